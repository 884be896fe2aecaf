package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/store"
)

// Totals returns a campaign's sends, bounces (refused by the relay or
// bounced later, hard) and complaints so far, summed over its steps and the
// shards, in one pipeline: what auto-pause compares with its thresholds.
func Totals(ctx context.Context, rdb redis.UniversalClient, prefix, campaignID string) (store.Totals, error) {
	prefix = cmpPrefix(prefix)
	cmds := make([]*redis.MapStringStringCmd, store.Shards)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.HGetAll(ctx, shardKeys(prefix, i).campaign(campaignID))
		}
		return nil
	})
	if err != nil {
		return store.Totals{}, fmt.Errorf("report: totals of %s: %w", campaignID, err)
	}
	var t store.Totals
	for _, c := range cmds {
		for field, v := range c.Val() {
			_, what, ok := strings.Cut(field, "|")
			if !ok {
				continue
			}
			n, _ := strconv.Atoi(v)
			switch what {
			case "sent":
				t.Sent += n
			case "bounced":
				t.Bounced += n
			case "complained":
				t.Complained += n
			}
		}
	}
	return t, nil
}
