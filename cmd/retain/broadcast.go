package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
	"github.com/retainmail/retain/store"
)

var broadcastCmd = &command{
	name:    "broadcast",
	summary: "Preview who a broadcast reaches and when, or show how its sending went",
	usage:   "broadcast preview ID [--at TIME] [--sample N] [--json] | status [ID]  [--campaigns DIR]",
	help: `A broadcast is a campaign with kind: broadcast: one email, sent once to the
customers its audience: selects, at send_at (an instant, or a local time that
every customer gets on their own clock, one zone after another). When the
broadcast is first due, a scheduler decides its audience over every stored
customer, once, and puts the chosen ones on the due index at their send
times; the workers then send it with every rule of a sequence (subscription,
topic, suppression, frequency cap, send window, the ledger).

retain broadcast preview ID decides the audience as that evaluation will,
without writing anything: how many customers get it, by stage and locale, how
many are left out and why (unsubscribed, opted out of the topic, suppressed,
outside the audience, the control group of a holdout), and a sample of
customers with their local send times. It reads every stored customer once
(about a minute for a million); a progress line is drawn on a terminal.

retain broadcast status shows each broadcast's evaluation: not yet due,
running (with its progress), done (with its counts) or skipped (its send time
passed more than lifecycle.yaml's backfill grace before a scheduler ran).

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help worker).

Examples:
  retain broadcast preview planning-templates
  retain broadcast preview planning-templates --json --sample 20
  retain broadcast status`,
	run: runBroadcast,
}

func runBroadcast(c *command, e *env, args []string) int {
	fs := c.flags()
	at := fs.String("at", "", "decide as at `TIME` (RFC 3339; default: when the broadcast is first due, or now once that passed)")
	sample := fs.Int("sample", 10, "show `N` customers who get it, with their send times")
	asJSON := fs.Bool("json", false, "print the preview as JSON")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	switch {
	case len(pos) == 0:
		return c.usageError(e, "say what to do: preview ID or status")
	case pos[0] == "preview" && len(pos) != 2:
		return c.usageError(e, "preview takes one broadcast ID")
	case pos[0] == "status" && len(pos) > 2:
		return c.usageError(e, "status takes at most one broadcast ID")
	case pos[0] != "preview" && pos[0] != "status":
		return c.usageError(e, "unknown action %q: use preview or status", pos[0])
	}
	var when time.Time
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return c.usageError(e, "--at %q is not an RFC 3339 time such as 2027-01-12T09:00:00Z", *at)
		}
		when = t
	}
	if *sample < 0 {
		return c.usageError(e, "--sample must not be negative")
	}
	ctx := context.Background()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	set := ws.engine.Set()
	var camps []*campaign.Campaign
	if len(pos) == 2 {
		camp := set.Campaign(pos[1])
		if camp == nil || !camp.IsBroadcast() {
			var ids []string
			for _, b := range ws.engine.Broadcasts() {
				ids = append(ids, b.ID)
			}
			what := "no broadcast"
			if camp != nil {
				what = "campaign " + camp.ID + " is a sequence, not a broadcast:"
			}
			fmt.Fprintf(e.stderr, "retain broadcast: %s %q%s; the broadcasts are %v\n", what, pos[1], campaign.DidYouMean(pos[1], ids), ids)
			return exitProblems
		}
		camps = []*campaign.Campaign{camp}
	} else {
		camps = ws.engine.Broadcasts()
	}
	if pos[0] == "status" {
		return broadcastStatus(ctx, e, ws.store, camps)
	}
	camp := camps[0]
	if when.IsZero() {
		when = time.Now()
		if first := camp.Broadcast.SendAt.Earliest(); first.After(when) {
			when = first
		}
	}
	p, err := previewBroadcast(ctx, e, ws, camp, when, *sample)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain broadcast: %v\n", err)
		return exitProblems
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(p)
		return exitOK
	}
	p.print(e)
	return exitOK
}

// broadcastPreview is what retain broadcast preview prints.
type broadcastPreview struct {
	Campaign string    `json:"campaign"`
	Audience string    `json:"audience"`
	SendAt   string    `json:"send_at"`
	First    time.Time `json:"first_due"`
	Last     time.Time `json:"last_due"`
	DecideAt time.Time `json:"decided_at"`
	Holdout  string    `json:"holdout,omitempty"`
	Scanned  int64     `json:"scanned"`
	// Get is how many customers get the email; Control how many are
	// enrolled in the holdout and sent nothing.
	Get     int64            `json:"get"`
	Control int64            `json:"control"`
	Left    map[string]int64 `json:"left_out"`
	// Groups counts those who get it by stage and locale.
	Groups []previewGroup        `json:"by_stage_and_locale"`
	Sample []previewSample       `json:"sample"`
	State  *store.BroadcastState `json:"evaluation,omitempty"`
	Took   time.Duration         `json:"-"`
}

type previewGroup struct {
	Stage     string `json:"stage"`
	Locale    string `json:"locale"`
	Customers int64  `json:"customers"`
}

type previewSample struct {
	ID     string    `json:"id"`
	Email  string    `json:"email"`
	Zone   string    `json:"timezone"`
	Local  string    `json:"local_send_time"`
	SendAt time.Time `json:"send_at"`
	Stage  string    `json:"stage"`
	Locale string    `json:"locale"`
}

func previewBroadcast(ctx context.Context, e *env, ws *workspace, camp *campaign.Campaign, when time.Time, n int) (*broadcastPreview, error) {
	p := &broadcastPreview{Campaign: camp.ID, Audience: camp.Audience.Source, SendAt: camp.Broadcast.SendAt.Source,
		First: camp.Broadcast.SendAt.Earliest(), Last: camp.Broadcast.SendAt.Latest(), DecideAt: when, Left: map[string]int64{}}
	if camp.Holdout > 0 {
		p.Holdout = fmt.Sprintf("%g%%", float64(camp.Holdout)/100)
	}
	if states, err := ws.store.BroadcastStates(ctx, []string{camp.ID}); err == nil {
		p.State = states[camp.ID]
	}
	lc := ws.engine.Set().Lifecycle
	total, _ := ws.store.CountCustomers(ctx)
	bar := newImpactProgress(e.stderr, total)
	var mu sync.Mutex
	counts := queue.AudienceCounts{}
	groups := map[[2]string]int64{}
	t0 := time.Now()
	bar.start()
	aud := &queue.Audience{Store: ws.store, Engine: ws.engine, Workers: 4}
	err := aud.Scan(ctx, camp, when, func(_ int, batch []queue.Decided) error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range batch {
			counts[d.Choice]++
			if d.Choice != lifecycle.ChoiceSend {
				continue
			}
			c := d.Customer
			locale := cmpOr(c.Locale, lc.Locale)
			groups[[2]string{c.Stage, locale}]++
			if len(p.Sample) < n {
				loc := ws.engine.Location(c)
				p.Sample = append(p.Sample, previewSample{ID: c.ID, Email: c.Email, Zone: loc.String(), Stage: c.Stage, Locale: locale,
					SendAt: d.SendAt.UTC(), Local: d.SendAt.In(loc).Format("2006-01-02 15:04 MST")})
			}
		}
		bar.add(len(batch))
		return nil
	})
	bar.stop()
	if err != nil {
		return nil, err
	}
	p.Took = time.Since(t0)
	for ch, v := range counts {
		p.Scanned += v
		switch ch {
		case lifecycle.ChoiceSend:
			p.Get = v
		case lifecycle.ChoiceControl:
			p.Control = v
		default:
			p.Left[ch.String()] = v
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b [2]string) int {
		if groups[a] != groups[b] {
			return int(groups[b] - groups[a])
		}
		return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1])
	}) {
		p.Groups = append(p.Groups, previewGroup{Stage: k[0], Locale: k[1], Customers: groups[k]})
	}
	slices.SortFunc(p.Sample, func(a, b previewSample) int { return a.SendAt.Compare(b.SendAt) })
	return p, nil
}

func (p *broadcastPreview) print(e *env) {
	w := e.stdout
	fmt.Fprintf(w, "broadcast %s, send_at %s\n", p.Campaign, p.SendAt)
	if p.First.Equal(p.Last) {
		fmt.Fprintf(w, "  sent at %s\n", p.First.UTC().Format("2006-01-02 15:04 UTC"))
	} else {
		fmt.Fprintf(w, "  sent from %s (the first zone) to %s (the last)\n", p.First.UTC().Format("2006-01-02 15:04 UTC"), p.Last.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintf(w, "  audience: %s\n", p.Audience)
	if st := p.State; st != nil {
		fmt.Fprintf(w, "  evaluation: %s (started %s); the preview decides again as it would now\n", st.State, st.Started.UTC().Format("2006-01-02 15:04 UTC"))
	} else {
		fmt.Fprintf(w, "  evaluation: not yet; a scheduler decides the audience at %s\n", p.First.UTC().Format("2006-01-02 15:04 UTC"))
	}
	fmt.Fprintf(w, "\n%d customers decided as at %s in %s:\n", p.Scanned, p.DecideAt.UTC().Format("2006-01-02 15:04 UTC"), p.Took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%d\tget it\t\n", p.Get)
	if p.Holdout != "" {
		fmt.Fprintf(tw, "\t%d\tcontrol group (holdout %s): enrolled, sent nothing\t\n", p.Control, p.Holdout)
	}
	for _, ch := range lifecycle.Choices {
		if v, ok := p.Left[ch.String()]; ok {
			fmt.Fprintf(tw, "\t%d\t%s\t\n", v, ch)
		}
	}
	tw.Flush()
	if len(p.Groups) > 0 {
		fmt.Fprintf(w, "\nwho gets it, by stage and locale:\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  STAGE\tLOCALE\tCUSTOMERS")
		for _, g := range p.Groups {
			fmt.Fprintf(tw, "  %s\t%s\t%d\n", g.Stage, g.Locale, g.Customers)
		}
		tw.Flush()
	}
	if len(p.Sample) > 0 {
		fmt.Fprintf(w, "\na sample, by send time:\n")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CUSTOMER\tEMAIL\tSTAGE\tLOCALE\tTIME ZONE\tLOCAL SEND TIME\tUTC")
		for _, s := range p.Sample {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Email, s.Stage, s.Locale, s.Zone, s.Local, s.SendAt.Format("2006-01-02 15:04"))
		}
		tw.Flush()
	}
}

func broadcastStatus(ctx context.Context, e *env, st *store.Store, camps []*campaign.Campaign) int {
	ids := make([]string, len(camps))
	for i, c := range camps {
		ids[i] = c.ID
	}
	states, err := st.BroadcastStates(ctx, ids)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain broadcast: %v\n", err)
		return exitProblems
	}
	if len(camps) == 0 {
		fmt.Fprintln(e.stdout, "no broadcasts are loaded (a broadcast is a campaign with kind: broadcast)")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROADCAST\tSEND_AT\tSTATE\tDECIDED\tENROLLED\tCONTROL\tDETAIL")
	for _, c := range camps {
		s := states[c.ID]
		if s == nil {
			fmt.Fprintf(tw, "%s\t%s\tdue %s\t-\t-\t-\t\n", c.ID, c.Broadcast.SendAt.Source, c.Broadcast.SendAt.Earliest().UTC().Format("2006-01-02 15:04 UTC"))
			continue
		}
		enrolled := s.Counts[lifecycle.ChoiceSend.String()] + s.Counts[lifecycle.ChoiceControl.String()] + s.Counts[lifecycle.ChoiceHad.String()]
		detail := s.Reason
		if s.State == store.BroadcastRunning && s.Total > 0 {
			detail = fmt.Sprintf("%d%% of about %d customers", min(100, s.Scanned*100/s.Total), s.Total)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.ID, s.SendAt, s.State, s.Scanned, enrolled, s.Counts[lifecycle.ChoiceControl.String()], detail)
	}
	tw.Flush()
	return exitOK
}
