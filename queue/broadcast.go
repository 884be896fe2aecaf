package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/store"
)

// Audience decides a broadcast's audience over the stored customers: once,
// when the broadcast is due, to enrol the chosen customers (Evaluate), and as
// often as asked without writing (Scan, for retain broadcast preview and
// retain impact). Both decide each customer the same way
// (lifecycle.Engine.Choose, then the suppression list), so a preview's counts
// are what the evaluation enrols.
type Audience struct {
	Store  *store.Store
	Engine *lifecycle.Engine
	// Batch is how many customers are read at a time; default 1,000.
	Batch int
	// Workers decide batches in parallel; default 2.
	Workers int
	// Every is how often Evaluate reports its progress; default 5 seconds.
	Every time.Duration
}

// Decided is one customer's decision in a scan.
type Decided struct {
	Customer *lifecycle.Customer
	Choice   lifecycle.Choice
	// SendAt is the customer's send time, for those it enrols (the
	// enrollment of ChoiceHad says it).
	SendAt time.Time
}

// Scan decides broadcast camp at now for every stored customer and calls fn
// with each batch's decisions, from Workers goroutines at once (worker is the
// caller's index, for per-worker state). It writes nothing. The customers are
// read as store.ScanProfiles reads them: profile, attributes, counters and
// subscription, which is all a decision needs.
func (a *Audience) Scan(ctx context.Context, camp *campaign.Campaign, now time.Time, fn func(worker int, batch []Decided) error) error {
	return a.Store.ScanProfiles(ctx, cmpOr(a.Batch, 1000), cmpOr(a.Workers, 2), func(worker int, batch []*lifecycle.Customer) error {
		out, err := a.decide(ctx, camp, now, batch)
		if err != nil {
			return err
		}
		return fn(worker, out)
	})
}

// decide decides a batch: the engine's choice, then the suppression list for
// those it would enrol.
func (a *Audience) decide(ctx context.Context, camp *campaign.Campaign, now time.Time, batch []*lifecycle.Customer) ([]Decided, error) {
	out := make([]Decided, len(batch))
	var emails []string
	var at []int
	for i, c := range batch {
		ch := a.Engine.Choose(c, camp, now)
		out[i] = Decided{Customer: c, Choice: ch}
		if ch.Enrols() {
			out[i].SendAt = lifecycle.BroadcastAt(camp, a.Engine.Location(c))
			emails, at = append(emails, c.Email), append(at, i)
		}
	}
	if len(emails) == 0 {
		return out, nil
	}
	sups, err := a.Store.Suppressions(ctx, emails)
	if err != nil {
		return nil, err
	}
	for k, sup := range sups {
		if sup != nil {
			out[at[k]].Choice = lifecycle.ChoiceSuppressed
		}
	}
	return out, nil
}

// AudienceCounts are the customers of a scan by decision.
type AudienceCounts map[lifecycle.Choice]int64

// Enrolled is how many customers the broadcast enrols: sent, control, and
// those an earlier run of the evaluation enrolled.
func (c AudienceCounts) Enrolled() int64 {
	return c[lifecycle.ChoiceSend] + c[lifecycle.ChoiceControl] + c[lifecycle.ChoiceHad]
}

// Evaluate decides broadcast camp at now for every stored customer and enrols
// those chosen, each due at their own send time: it puts them on the due
// index, where the scheduler hands them out like any other due customer, so
// the worker's rules (subscription, topic, suppression, frequency cap,
// send window, the ledger) hold for a broadcast as for a sequence. Memory
// stays at a few batches whatever the number of customers. It may run again
// after a crash: a customer enrolled once is never enrolled again
// (lifecycle.ChoiceHad). progress, when set, is called every Every with the
// counts so far.
func (a *Audience) Evaluate(ctx context.Context, camp *campaign.Campaign, now time.Time, progress func(scanned int64, delta AudienceCounts) error) (AudienceCounts, error) {
	var (
		mu      sync.Mutex
		total   = AudienceCounts{}
		pending = AudienceCounts{}
		scanned atomic.Int64
		unsent  int64
		last    = time.Now()
	)
	every := cmpOr(a.Every, 5*time.Second)
	flush := func(force bool) error {
		mu.Lock()
		if !force && time.Since(last) < every {
			mu.Unlock()
			return nil
		}
		at := scanned.Load()
		delta, n := pending, at-unsent
		pending, unsent, last = AudienceCounts{}, at, time.Now()
		mu.Unlock()
		if progress == nil {
			return nil
		}
		return progress(n, delta)
	}
	err := a.Scan(ctx, camp, now, func(_ int, batch []Decided) error {
		var ids []string
		for _, d := range batch {
			if d.Choice.Enrols() {
				ids = append(ids, d.Customer.ID)
			}
		}
		// The customer is decided again on its current state, under the
		// write's WATCH: what changed since the scan read it counts.
		got := make(map[string]lifecycle.Choice, len(ids))
		// A write that keeps losing its optimistic lock to busy customers
		// is tried again: enrolling is idempotent.
		var err error
		for attempt := 0; len(ids) > 0 && attempt < 3; attempt++ {
			err = a.Store.UpdateMany(ctx, ids, func(c *lifecycle.Customer) (*store.Change, error) {
				choice, chs := a.Engine.EnrollBroadcast(c, camp, now)
				if choice == lifecycle.ChoiceHad && got[c.ID].Enrols() {
					return nil, nil // enrolled by this batch's earlier attempt
				}
				got[c.ID] = choice
				if !choice.Enrols() {
					return nil, nil
				}
				return &store.Change{Customer: c, Changes: chs, Wake: a.Engine.NextWake(c), Due: a.Engine.NextDue(c)}, nil
			})
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("enrol %d customers in broadcast %s: %w", len(ids), camp.ID, err)
		}
		mu.Lock()
		for _, d := range batch {
			ch := d.Choice
			if g, ok := got[d.Customer.ID]; ok {
				ch = g
			}
			total[ch]++
			pending[ch]++
		}
		mu.Unlock()
		scanned.Add(int64(len(batch)))
		return flush(false)
	})
	if err == nil {
		// A scan cut short (the lock lost, the scheduler stopping) has not
		// decided everyone: never report it done.
		err = ctx.Err()
	}
	if err != nil {
		return total, err
	}
	return total, flush(true)
}

// broadcaster starts the evaluation of each broadcast once it is due, for a
// Scheduler: one scheduler of a deployment evaluates a broadcast (a lock in
// Redis, renewed while it runs), in the background so that ticks go on and
// the customers it enrols are handed out while it runs.
type broadcaster struct {
	aud   *Audience
	store *store.Store
	log   *slog.Logger
	// grace is how long after its last send time a broadcast may still be
	// evaluated (the lifecycle's backfill grace).
	grace time.Duration

	mu       sync.Mutex
	finished map[string]bool // evaluated (or skipped) broadcasts, by ID
	running  map[string]bool
	wg       sync.WaitGroup
}

// broadcastLock is how long a scheduler's lock on an evaluation lasts unless
// renewed (every third of it): a scheduler that dies holds it no longer.
const broadcastLock = 30 * time.Second

func newBroadcaster(st *store.Store, eng *lifecycle.Engine, log *slog.Logger) *broadcaster {
	return &broadcaster{aud: &Audience{Store: st, Engine: eng}, store: st, log: log,
		grace: eng.BroadcastGrace(), finished: map[string]bool{}, running: map[string]bool{}}
}

// check starts the evaluation of every broadcast due at now that is not
// evaluated yet and that no other scheduler evaluates. The evaluations run
// until done or until ctx ends (wait waits for them).
func (b *broadcaster) check(ctx context.Context, now time.Time) error {
	for _, camp := range b.aud.Engine.Broadcasts() {
		if camp.Broadcast.SendAt.Earliest().After(now) {
			continue
		}
		b.mu.Lock()
		skip := b.finished[camp.ID] || b.running[camp.ID]
		b.mu.Unlock()
		if skip {
			continue
		}
		token := store.NewToken()
		ok, err := b.store.TakeBroadcast(ctx, camp.ID, token, broadcastLock)
		if err != nil {
			return err
		}
		if !ok {
			states, err := b.store.BroadcastStates(ctx, []string{camp.ID})
			if err != nil {
				return err
			}
			if st := states[camp.ID]; st != nil && st.State != store.BroadcastRunning {
				b.mu.Lock()
				b.finished[camp.ID] = true
				b.mu.Unlock()
			}
			continue
		}
		b.mu.Lock()
		b.running[camp.ID] = true
		b.mu.Unlock()
		b.wg.Go(func() {
			done := b.run(ctx, camp, token, now)
			b.mu.Lock()
			delete(b.running, camp.ID)
			b.finished[camp.ID] = done
			b.mu.Unlock()
		})
	}
	return nil
}

// wait waits for the evaluations in progress.
func (b *broadcaster) wait() { b.wg.Wait() }

// run evaluates camp at now holding the lock taken with token, and reports
// whether it finished (false: it failed or was stopped, and a later tick
// starts it over).
func (b *broadcaster) run(ctx context.Context, camp *campaign.Campaign, token string, now time.Time) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := b.log.With("campaign", camp.ID, "send_at", camp.Broadcast.SendAt.Source)
	defer func() {
		if err := b.store.ReleaseBroadcast(context.WithoutCancel(ctx), camp.ID, token); err != nil {
			log.Error("broadcast: release the evaluation lock", "error", err)
		}
	}()
	// Hold the lock while evaluating; stop when it is lost.
	go func() {
		t := time.NewTicker(broadcastLock / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ok, err := b.store.HoldBroadcast(ctx, camp.ID, token, broadcastLock); err == nil && !ok {
					log.Error("broadcast: the evaluation lock ran out; another scheduler takes over")
					cancel()
					return
				}
			}
		}
	}()
	if last := camp.Broadcast.SendAt.Latest(); now.After(last.Add(b.grace)) {
		reason := fmt.Sprintf("first due %s, longer ago than the backfill grace (%s): not sent", last.Format(time.RFC3339), campaign.FormatDuration(b.grace))
		log.Warn("broadcast skipped: its send time passed while no scheduler ran", "reason", reason)
		if err := b.store.FinishBroadcast(ctx, camp.ID, store.BroadcastSkipped, reason, now); err != nil {
			log.Error("broadcast: record the skip", "error", err)
			return false
		}
		return true
	}
	total, _ := b.store.CountCustomers(ctx)
	if err := b.store.StartBroadcast(ctx, camp.ID, camp.Broadcast.SendAt.Source, now, total); err != nil {
		log.Error("broadcast: start the evaluation", "error", err)
		return false
	}
	log.Info("broadcast: evaluating the audience", "customers", total)
	t0 := time.Now()
	var scanned int64
	counts, err := b.aud.Evaluate(ctx, camp, now, func(n int64, delta AudienceCounts) error {
		scanned += n
		log.Info("broadcast: audience progress", "scanned", scanned, "of", total, "enrolled", delta.Enrolled())
		return b.store.CountBroadcast(ctx, camp.ID, n, delta.named())
	})
	if err != nil {
		log.Error("broadcast: the audience evaluation failed; it starts over on a later tick", "error", err, "scanned", scanned)
		return false
	}
	if err := b.store.FinishBroadcast(ctx, camp.ID, store.BroadcastDone, "", now); err != nil {
		log.Error("broadcast: record the end of the evaluation", "error", err)
		return false
	}
	log.Info("broadcast: audience evaluated", "customers", counts.total(), "enrolled", counts.Enrolled(),
		"control", counts[lifecycle.ChoiceControl], "took", time.Since(t0).Round(time.Millisecond))
	return true
}

// named is c by choice name, as the store keeps it.
func (c AudienceCounts) named() map[string]int64 {
	out := make(map[string]int64, len(c))
	for ch, n := range c {
		out[ch.String()] = n
	}
	return out
}

func (c AudienceCounts) total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}
