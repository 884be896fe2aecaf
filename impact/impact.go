// Package impact tells what an edit of the campaigns does to customers already
// in them: it runs each customer forward on the real engine twice, under the
// campaigns as they were and as they are edited, and compares what each would
// send, skip, end and enrol. `retain impact` feeds it stored customers (or a
// customers file) and prints its Report.
//
// It is pure, like the engine: customers and times in, counts out. It reads
// nothing and writes nothing; callers stream customers through Analyzer.Add
// (safe for one goroutine per Tally) and merge the tallies.
//
//	a := impact.NewAnalyzer(oldSet, newSet, now, 365*24*time.Hour)
//	t := a.NewTally()
//	for _, c := range customers { t.Add(c) }
//	r := a.Report(t)
package impact

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// Examples is how many customer IDs each count keeps as examples.
const Examples = 5

// Analyzer compares two campaign sets on customers.
type Analyzer struct {
	old, new *lifecycle.Engine
	diff     *campaign.Diff
	now      time.Time
	until    time.Time
	// renamedFrom maps a new step identity to the old one it likely renames.
	renamedFrom map[string]string
	renamedTo   map[string]string
	// changed lists the campaigns whose enrollments the edit can touch; nil
	// means every campaign (lifecycle.yaml changed).
	changed map[string]bool
	// enterable are the trigger stages of changed campaigns, and ahead the
	// stages time rules can move a customer to from each stage: a customer
	// who is in no changed campaign and can reach no such stage is not run
	// (runs apply no events, so event triggers cannot fire).
	enterable map[string]bool
	ahead     map[string][]string
	// broadcasts is set when the edit changes a broadcast: its audience is
	// decided over every customer, so every customer is run.
	broadcasts bool
}

// NewAnalyzer returns the analyzer of an edit from old to new, running customers
// from now until now+horizon.
func NewAnalyzer(old, new *campaign.Set, now time.Time, horizon time.Duration) *Analyzer {
	a := &Analyzer{old: lifecycle.New(old), new: lifecycle.New(new), diff: campaign.Compare(old, new),
		now: now, until: now.Add(horizon), renamedFrom: map[string]string{}, renamedTo: map[string]string{}}
	for _, cd := range a.diff.Changed {
		for _, r := range cd.Renamed {
			if r.New.IDPos.Line == 0 {
				a.renamedFrom[r.New.ID] = r.Old.ID
				a.renamedTo[r.Old.ID] = r.New.ID
			}
		}
	}
	if !a.diff.Lifecycle {
		a.changed = map[string]bool{}
		for _, c := range a.diff.Added {
			a.changed[c.ID] = true
		}
		for _, c := range a.diff.Removed {
			a.changed[c.ID] = true
		}
		for _, cd := range a.diff.Changed {
			a.changed[cd.ID] = true
		}
		for id := range a.changed {
			for _, s := range []*campaign.Set{old, new} {
				if c := s.Campaign(id); c != nil && c.IsBroadcast() {
					a.broadcasts = true
				}
			}
		}
		a.enterable = map[string]bool{}
		for id := range a.changed {
			for _, s := range []*campaign.Set{old, new} {
				if c := s.Campaign(id); c != nil && c.Trigger.Stage != "" {
					a.enterable[c.Trigger.Stage] = true
				}
			}
		}
		a.ahead = timeReachable(new.Lifecycle)
	}
	return a
}

// timeReachable maps each stage to the stages its time rules (after,
// inactive) lead to, directly or in turn.
func timeReachable(lc *campaign.Lifecycle) map[string][]string {
	next := map[string][]string{}
	for _, tr := range lc.Transitions {
		if tr.On != "" {
			continue
		}
		for _, s := range lc.Stages {
			if tr.AppliesIn(s.Name) && tr.To != s.Name {
				next[s.Name] = append(next[s.Name], tr.To)
			}
		}
	}
	out := map[string][]string{}
	for _, s := range lc.Stages {
		seen := map[string]bool{}
		queue := slices.Clone(next[s.Name])
		for len(queue) > 0 {
			st := queue[0]
			queue = queue[1:]
			if seen[st] {
				continue
			}
			seen[st] = true
			out[s.Name] = append(out[s.Name], st)
			queue = append(queue, next[st]...)
		}
	}
	return out
}

// Replay returns the state a customer with this profile (c: ID, email,
// starting stage, attributes) and event history has now under the old
// campaigns, as the deployed worker and scheduler would have kept it.
func (a *Analyzer) Replay(c *lifecycle.Customer, events []lifecycle.Event) (*lifecycle.Customer, error) {
	created := a.now
	for _, ev := range events {
		if ev.At.Before(created) {
			created = ev.At
		}
	}
	cust, _, err := a.old.NewCustomer(c.ID, c.Email, c.Stage, created)
	if err != nil {
		return nil, err
	}
	cust.FirstName, cust.Name, cust.Locale, cust.Timezone, cust.Attributes = c.FirstName, c.Name, c.Locale, c.Timezone, c.Attributes
	if _, err := a.old.Simulate(cust, events, a.now); err != nil {
		return nil, err
	}
	return cust, nil
}

// Diff is the edit the analyzer compares.
func (a *Analyzer) Diff() *campaign.Diff { return a.diff }

// Count is a number of customers with a few of their IDs.
type Count struct {
	N        int      `json:"customers"`
	Examples []string `json:"examples,omitempty"`
}

func (c *Count) add(id string) {
	c.N++
	c.example(id)
}

// example keeps the Examples smallest IDs, sorted, so a report is the same
// whatever order customers came in.
func (c *Count) example(id string) {
	i, found := slices.BinarySearch(c.Examples, id)
	if found || i >= Examples {
		return
	}
	c.Examples = slices.Insert(c.Examples, i, id)
	if len(c.Examples) > Examples {
		c.Examples = c.Examples[:Examples]
	}
}

func (c *Count) merge(o Count) {
	c.N += o.N
	for _, id := range o.Examples {
		c.example(id)
	}
}

// Step is what the edit does to one step's customers.
type Step struct {
	ID string `json:"id"`
	// Again counts customers who would get the step although they had it (or
	// the step it renames) in the same enrollment: never wanted.
	Again Count `json:"again"`
	// Lost counts customers the campaigns as they were would send the step to,
	// and the edited ones would not.
	Lost Count `json:"lost"`
	// Gained counts customers the edited campaigns send the step to, and the
	// old ones would not (a new step, a condition relaxed).
	Gained Count `json:"gained"`
	// SkippedByEdit counts customers whose enrollment records the step as
	// skipped because of the edit (lifecycle.EditedCause).
	SkippedByEdit Count `json:"skipped_by_edit"`
}

// Moves is how far the next send of customers in a campaign moves.
type Moves struct {
	// Earlier and Later count customers whose next email comes sooner or later.
	Earlier Count `json:"earlier"`
	Later   Count `json:"later"`
	// Buckets splits the moves by how far: index i counts moves of at most
	// MoveBuckets[i] (the last: longer), earlier and later alike.
	Buckets [len(MoveBuckets) + 1]int `json:"buckets"`
}

// MoveBuckets are the bounds of Moves.Buckets.
var MoveBuckets = [...]time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// Campaign is what the edit does to one campaign's customers.
type Campaign struct {
	ID string `json:"id"`
	// InFlight counts the customers with an active enrollment in it now.
	InFlight int `json:"in_flight"`
	// Completes, Exits: enrollments that end otherwise than they would have,
	// by completing or by an exit, because of the edit.
	Completes Count `json:"completes"`
	Exits     Count `json:"exits"`
	// Enrols and NoLongerEnrols: enrollments only the edited campaigns make,
	// and only the old ones would make, within the horizon.
	Enrols         Count   `json:"enrols"`
	NoLongerEnrols Count   `json:"no_longer_enrols"`
	Moves          Moves   `json:"next_send_moves"`
	Steps          []*Step `json:"steps"`
}

func (c *Campaign) step(id string) *Step {
	for _, s := range c.Steps {
		if s.ID == id {
			return s
		}
	}
	s := &Step{ID: id}
	c.Steps = append(c.Steps, s)
	return s
}

// Tally accumulates the outcomes of customers; use one per goroutine and
// Merge them.
type Tally struct {
	a         *Analyzer
	customers int
	// again and lost count customers with any step again or lost.
	again, lost int
	campaigns   map[string]*Campaign
	err         error
}

// NewTally returns an empty tally.
func (a *Analyzer) NewTally() *Tally {
	return &Tally{a: a, campaigns: map[string]*Campaign{}}
}

func (t *Tally) campaign(id string) *Campaign {
	c := t.campaigns[id]
	if c == nil {
		c = &Campaign{ID: id}
		t.campaigns[id] = c
	}
	return c
}

// enrollment is what one run did in one enrollment of a campaign.
type enrollment struct {
	sent      []string  // step identities, in order
	firstSend time.Time // of the first step sent
	ended     lifecycle.Kind
	reason    string
	enrolled  bool // the enrollment began during the run
}

type key struct {
	campaign string
	n        int
}

// Add runs c under both campaign sets and counts the differences. c is not
// changed. A customer whose run fails (a rule loop) counts as an error: see Err.
func (t *Tally) Add(c *lifecycle.Customer) {
	a := t.a
	t.customers++
	for id, enr := range c.Enrollments {
		if enr.Status == lifecycle.Active {
			t.campaign(id).InFlight++
		}
	}
	if a.changed != nil && !t.touched(c) {
		return
	}
	oldRun, err := a.run(a.old, c)
	if err == nil {
		var newRun map[key]*enrollment
		newRun, err = a.run(a.new, c)
		if err == nil {
			t.compare(c, oldRun, newRun)
			return
		}
	}
	if t.err == nil {
		t.err = fmt.Errorf("customer %s: %w", c.ID, err)
	}
}

// touched reports whether the edit can change anything for c: an active
// enrollment in an edited campaign, or an edited campaign's trigger stage that
// time rules can lead c to (runs apply no events, so only time rules move
// customers, and an ended enrollment changes only by a new one). Customers it
// cannot touch need no run.
func (t *Tally) touched(c *lifecycle.Customer) bool {
	if t.a.broadcasts {
		return true
	}
	for id, enr := range c.Enrollments {
		if enr.Status == lifecycle.Active && t.a.changed[id] {
			return true
		}
	}
	for _, stage := range t.a.ahead[c.Stage] {
		if t.a.enterable[stage] {
			return true
		}
	}
	return false
}

// run simulates a copy of c under e and sums it up per enrollment.
func (a *Analyzer) run(e *lifecycle.Engine, c *lifecycle.Customer) (map[key]*enrollment, error) {
	cp := c.Clone()
	// A broadcast first due within the horizon has its audience decided
	// then, as the scheduler does, on the customer as stored now (a
	// suppressed address is not known here: it counts as enrolled). One due
	// before now was decided already: its customers are enrolled or not.
	var enrolled []lifecycle.Change
	for _, camp := range e.Broadcasts() {
		if at := camp.Broadcast.SendAt.Earliest(); !at.Before(a.now) && !at.After(a.until) {
			_, chs := e.EnrollBroadcast(cp, camp, at)
			enrolled = append(enrolled, chs...)
		}
	}
	chs, err := e.Simulate(cp, nil, a.until)
	chs = append(enrolled, chs...)
	if err != nil {
		return nil, err
	}
	out := map[key]*enrollment{}
	get := func(campaignID string, n int) *enrollment {
		k := key{campaignID, n}
		r := out[k]
		if r == nil {
			r = &enrollment{}
			out[k] = r
		}
		return r
	}
	for _, ch := range chs {
		if ch.Campaign == "" {
			continue
		}
		n := ch.Enrollment
		if n == 0 {
			if enr := c.Enrollments[ch.Campaign]; enr != nil {
				n = enr.Number
			}
		}
		r := get(ch.Campaign, n)
		switch ch.Kind {
		case lifecycle.KindEnrolled:
			r.enrolled = true
		case lifecycle.KindSent:
			if r.firstSend.IsZero() {
				r.firstSend = ch.At
			}
			r.sent = append(r.sent, ch.Step)
		case lifecycle.KindSkipped:
			if strings.HasPrefix(ch.Reason, lifecycle.EditedCause) {
				r.sent = append(r.sent, "skip:"+ch.Step)
			}
		case lifecycle.KindCompleted, lifecycle.KindExited, lifecycle.KindGoal:
			r.ended, r.reason = ch.Kind, ch.Reason
		}
	}
	return out, nil
}

func (t *Tally) compare(c *lifecycle.Customer, oldRun, newRun map[key]*enrollment) {
	a := t.a
	var again, lost bool
	defer func() {
		if again {
			t.again++
		}
		if lost {
			t.lost++
		}
	}()
	keys := map[key]bool{}
	for k := range oldRun {
		keys[k] = true
	}
	for k := range newRun {
		keys[k] = true
	}
	for k := range keys {
		o, n := oldRun[k], newRun[k]
		camp := t.campaign(k.campaign)
		switch {
		case o == nil && n != nil && n.enrolled:
			camp.Enrols.add(c.ID)
		case o != nil && o.enrolled && (n == nil || !n.enrolled):
			camp.NoLongerEnrols.add(c.ID)
		}
		if o == nil {
			o = &enrollment{}
		}
		if n == nil {
			n = &enrollment{}
		}
		var had []string
		if enr := c.Enrollments[k.campaign]; enr != nil && enr.Number == k.n {
			for _, slug := range enr.Passed {
				had = append(had, k.campaign+"/"+slug)
			}
		}
		for _, id := range n.sent {
			if skipped, ok := strings.CutPrefix(id, "skip:"); ok {
				camp.step(skipped).SkippedByEdit.add(c.ID)
				continue
			}
			if slices.Contains(had, id) || slices.Contains(had, a.renamedFrom[id]) {
				camp.step(id).Again.add(c.ID)
				again = true
			}
			if !slices.Contains(o.sent, id) && !slices.Contains(o.sent, a.renamedFrom[id]) {
				camp.step(id).Gained.add(c.ID)
			}
		}
		for _, id := range o.sent {
			if strings.HasPrefix(id, "skip:") {
				continue
			}
			if !slices.Contains(n.sent, id) && !slices.Contains(n.sent, a.renamedTo[id]) {
				camp.step(id).Lost.add(c.ID)
				lost = true
			}
		}
		if n.ended != o.ended || n.ended != "" && strings.HasPrefix(n.reason, lifecycle.EditedCause) && !strings.HasPrefix(o.reason, lifecycle.EditedCause) {
			switch n.ended {
			case lifecycle.KindCompleted:
				camp.Completes.add(c.ID)
			case lifecycle.KindExited:
				camp.Exits.add(c.ID)
			}
		}
		if !o.firstSend.IsZero() && !n.firstSend.IsZero() && !o.firstSend.Equal(n.firstSend) {
			d := n.firstSend.Sub(o.firstSend)
			if d < 0 {
				camp.Moves.Earlier.add(c.ID)
				d = -d
			} else {
				camp.Moves.Later.add(c.ID)
			}
			i := 0
			for i < len(MoveBuckets) && d > MoveBuckets[i] {
				i++
			}
			camp.Moves.Buckets[i]++
		}
	}
}

// Merge adds o's counts to t.
func (t *Tally) Merge(o *Tally) {
	t.customers += o.customers
	t.again += o.again
	t.lost += o.lost
	if t.err == nil {
		t.err = o.err
	}
	for id, oc := range o.campaigns {
		c := t.campaign(id)
		c.InFlight += oc.InFlight
		c.Completes.merge(oc.Completes)
		c.Exits.merge(oc.Exits)
		c.Enrols.merge(oc.Enrols)
		c.NoLongerEnrols.merge(oc.NoLongerEnrols)
		c.Moves.Earlier.merge(oc.Moves.Earlier)
		c.Moves.Later.merge(oc.Moves.Later)
		for i, n := range oc.Moves.Buckets {
			c.Moves.Buckets[i] += n
		}
		for _, os := range oc.Steps {
			s := c.step(os.ID)
			s.Again.merge(os.Again)
			s.Lost.merge(os.Lost)
			s.Gained.merge(os.Gained)
			s.SkippedByEdit.merge(os.SkippedByEdit)
		}
	}
}

// Customers is how many customers the tally counted.
func (t *Tally) Customers() int { return t.customers }

// Err is the first customer whose run failed, if any.
func (t *Tally) Err() error { return t.err }

// Report is the outcome of an impact run.
type Report struct {
	From      time.Time `json:"from"`
	Until     time.Time `json:"until"`
	Customers int       `json:"customers"`
	// Edits are the differences between the two campaign sets, one per line.
	Edits     []string    `json:"edits"`
	Campaigns []*Campaign `json:"campaigns"`
	// Again and Lost are the customers who would get a step again, and who
	// would lose steps, over every campaign: the surprises.
	Again int `json:"again"`
	Lost  int `json:"lost"`
}

// Surprising reports whether any customer would get an email again or lose
// steps: what a reviewer must look at before the edit ships.
func (r *Report) Surprising() bool { return r.Again > 0 || r.Lost > 0 }

// Report orders a tally for printing: campaigns of either set in ID order,
// steps in the new file order (then removed steps), keeping only campaigns
// with customers in flight or something to report.
func (a *Analyzer) Report(t *Tally) *Report {
	r := &Report{From: a.now, Until: a.until, Customers: t.customers, Edits: a.diff.Lines(), Again: t.again, Lost: t.lost}
	if r.Edits == nil {
		r.Edits = []string{}
	}
	order := map[string]int{}
	for i, s := range []*campaign.Set{a.new.Set(), a.old.Set()} {
		for _, c := range s.Campaigns {
			for j, st := range c.Steps {
				if _, ok := order[st.ID]; !ok {
					order[st.ID] = i*1000 + j
				}
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(t.campaigns)) {
		c := t.campaigns[id]
		slices.SortFunc(c.Steps, func(x, y *Step) int { return order[x.ID] - order[y.ID] })
		if c.InFlight > 0 || len(c.Steps) > 0 || c.Completes.N+c.Exits.N+c.Enrols.N+c.NoLongerEnrols.N > 0 {
			r.Campaigns = append(r.Campaigns, c)
		}
	}
	return r
}
