package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The email index ({p}email:{addr}) keeps one address per customer without
// being part of the customer's transaction: its key is named by the address,
// the customer's keys by the ID, and Redis Cluster puts those in different hash
// slots, where no transaction may span them. An address is taken in three
// steps, each one command on the address's key alone:
//
//  1. reserve: the value becomes "ID\nUNIXMS", a pending claim, unless another
//     customer holds the address;
//  2. the customer is written (its own transaction);
//  3. confirm: the value becomes "ID"; the old address, if it changed, is
//     released (deleted if it is still this customer's).
//
// A claim left pending by a writer that failed or died between the steps is
// respected for emailPending, then belongs to whoever holds the address in
// its customer record: the owner's (confirmed now, if it did write itself),
// or, when the owner does not have the address (it failed before step 2, or
// the customer is gone), free to take over. IDs hold no line break (the API
// and the import refuse them), so "ID\n" starts only that ID's claims.
const emailPending = time.Minute

// reserveEmailScript is step 1: KEYS[1] the address's key, ARGV[1] the ID,
// ARGV[2] now in unix ms. It returns nil when the ID holds the address now
// (pending), else the value that holds it.
var reserveEmailScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n' then
	return v
end
redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. ARGV[2])
return false
`)

// swapEmailScript sets KEYS[1] to ARGV[2] if it still holds ARGV[1].
var swapEmailScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[2])
	return 1
end
return 0
`)

// settleEmailScript confirms (ARGV[2] = "confirm": the value becomes the ID)
// or releases (ARGV[2] = "release": the key is deleted) the address KEYS[1],
// if it is still ARGV[1]'s, pending or confirmed.
var settleEmailScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] and (not v or string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. '\n') then
	return 0
end
if ARGV[2] == 'confirm' then
	redis.call('SET', KEYS[1], ARGV[1])
else
	redis.call('DEL', KEYS[1])
end
return 1
`)

// emailOwner reads the value of an address's key: the ID holding it, and
// when the claim is pending, since when.
func emailOwner(v string) (id string, pendingSince time.Time, pending bool) {
	id, ms, pending := strings.Cut(v, "\n")
	if !pending {
		return v, time.Time{}, false
	}
	n, _ := strconv.ParseInt(ms, 10, 64)
	return id, time.UnixMilli(n), true
}

// reserveEmail is step 1 for customer id and the normalized address addr, its
// commands sent through c: nil when id holds addr now, an error wrapping
// ErrEmailTaken when another customer does.
func (s *Store) reserveEmail(ctx context.Context, c redis.Cmdable, addr, id string) error {
	key := s.emailKey(addr)
	for range 3 {
		now := time.Now()
		v, err := reserveEmailScript.Run(ctx, c, []string{key}, id, now.UnixMilli()).Text()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("email %s: reserve: %w", addr, err)
		}
		owner, since, pending := emailOwner(v)
		if pending && now.Sub(since) < emailPending {
			return fmt.Errorf("email %s: %w (being written to %s)", addr, ErrEmailTaken, owner)
		}
		holder, err := s.customerVia(ctx, c, owner)
		switch {
		case err == nil && normEmail(holder.Email) == addr:
			if pending { // the owner was written; its confirm was lost
				s.settleEmail(ctx, addr, owner, "confirm")
			}
			return fmt.Errorf("email %s: %w", addr, ErrEmailTaken)
		case err != nil && !errors.Is(err, ErrNotFound):
			return fmt.Errorf("email %s: read its holder %s: %w", addr, owner, err)
		}
		// The holder does not have the address: take it over, unless the
		// key changed meanwhile (then look again).
		took, err := swapEmailScript.Run(ctx, c, []string{key}, v, id+"\n"+strconv.FormatInt(now.UnixMilli(), 10)).Int()
		if err != nil {
			return fmt.Errorf("email %s: reserve: %w", addr, err)
		}
		if took == 1 {
			return nil
		}
	}
	return fmt.Errorf("email %s: %w (contended)", addr, ErrEmailTaken)
}

// settleEmail is step 3 for one address: how is "confirm" or "release". It
// is best effort: a claim left pending is settled by the next writer of the
// address (reserveEmail), so a failure here is not the write's failure.
func (s *Store) settleEmail(ctx context.Context, addr, id, how string) {
	settleEmailScript.Run(context.WithoutCancel(ctx), s.rdb, []string{s.emailKey(addr)}, id, how)
}
