package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// The send ledger is package queue's (queue/ledger.go): one key per send,
// claimed before SMTP and holding the outcome after. Its key format lives
// here, beside the customer's other keys, so that what reads it (retain web's
// people page) names the same keys as the worker that writes it.

// Ledger states: the value of a ledger key. A claim's value is
// "claimed:<owner>:<token>"; LedgerStates reads it as LedgerClaimed.
const (
	LedgerClaimed = "claimed"
	LedgerSent    = "sent"
	LedgerUnknown = "unknown" // the connection was lost after DATA: maybe delivered
	LedgerFailed  = "failed"  // refused for good by the relay
)

// LedgerKey is the ledger key of one send: the customer's enrollment number
// enrollment in campaign, step slug. It is
// {s}ledger:{customer}:{campaign}:{enrollment}:{slug}, {s} being the
// customer's shard prefix (CustomerPrefix), so the entry is in the hash slot of
// the customer's other keys.
func LedgerKey(prefix, customer, campaign string, enrollment int, slug string) string {
	return CustomerPrefix(prefix, customer) + "ledger:" + customer + ":" + campaign + ":" + strconv.Itoa(enrollment) + ":" + slug
}

// SendRef names one send of a customer in the ledger.
type SendRef struct {
	Campaign   string
	Enrollment int
	Slug       string
}

// LedgerStates reads the ledger entries of sends of customer, in one MGET
// (they all share the customer's hash slot): per send, LedgerSent,
// LedgerUnknown, LedgerFailed, LedgerClaimed (a worker is sending it now), or
// "" when the ledger has no entry (never sent, or sent longer ago than the
// workers keep entries: 30 days by default).
func (s *Store) LedgerStates(ctx context.Context, customer string, sends []SendRef) ([]string, error) {
	if len(sends) == 0 {
		return nil, nil
	}
	keys := make([]string, len(sends))
	for i, r := range sends {
		keys[i] = LedgerKey(s.prefix, customer, r.Campaign, r.Enrollment, r.Slug)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("store: ledger of %s: %w", customer, err)
	}
	out := make([]string, len(sends))
	for i, v := range vals {
		st, _ := v.(string)
		if strings.HasPrefix(st, LedgerClaimed+":") {
			st = LedgerClaimed
		}
		out[i] = st
	}
	return out, nil
}
