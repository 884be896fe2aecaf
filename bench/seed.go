package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// seedWorkers is how many goroutines seed at once: each customer is a few
// Redis round trips, so parallelism, not CPU, makes seeding fast.
const seedWorkers = 32

func customerID(i int) string    { return fmt.Sprintf("cus_%07d", i) }
func customerEmail(i int) string { return fmt.Sprintf("customer%07d@example.org", i) }

// record is customer i as an import would give it; with signedUp set it carries
// its signed_up event at that time, which enrolls it in the welcome campaign with
// the first step due then.
func record(set *campaign.Set, i int, signedUp time.Time) (*ingest.Record, error) {
	plan := "free"
	if i%3 == 0 {
		plan = "team"
	}
	r := &ingest.Record{
		ID: customerID(i), Email: customerEmail(i), FirstName: "Ada", Name: "Ada Lovelace",
		Attributes: map[string]any{"plan": plan, "company": "Analytical Engines Ltd"},
	}
	if !signedUp.IsZero() {
		r.Events = []lifecycle.Event{{ID: "signup-" + r.ID, Name: "signed_up", At: signedUp}}
	}
	return r, ingest.Check(r, set.Lifecycle)
}

// seed creates customers [0, n) under prefix through ingest.Applier.Record, the
// path retain import takes, from seedWorkers goroutines.
func seed(ctx context.Context, rdb redis.UniversalClient, prefix string, set *campaign.Set, n int, signedUp time.Time) error {
	a := &ingest.Applier{Store: store.New(rdb, prefix), Engine: lifecycle.New(set)}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, seedWorkers)
	for range seedWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				r, err := record(set, i, signedUp)
				if err == nil {
					_, err = a.Record(ctx, r)
				}
				if err != nil {
					errs <- fmt.Errorf("seed %s: %w", customerID(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
