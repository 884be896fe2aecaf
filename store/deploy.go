package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

func (s *Store) deployedKey() string { return s.prefix + "campaigns:deployed" }

// RecordDeploy stores manifest as the campaign set now running and returns the
// one stored before it, or nil when none was (the first start). It is one
// SET … GET, so of two processes starting at once with the same new manifest,
// exactly one is handed the old one. The store does not read the manifest:
// package campaign writes and compares it (campaign.Manifest).
func (s *Store) RecordDeploy(ctx context.Context, manifest []byte) (previous []byte, err error) {
	prev, err := s.rdb.SetArgs(ctx, s.deployedKey(), manifest, redis.SetArgs{Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: record deployed campaigns: %w", err)
	}
	return []byte(prev), nil
}
