package campaign

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Campaign kinds (kind: in campaign.md).
const (
	KindSequence  = "sequence"
	KindBroadcast = "broadcast"
)

// kind reads kind:, making c a broadcast for kind: broadcast.
func (d *doc) kind(n *yaml.Node, c *Campaign) {
	s, ok := d.str(n, "kind")
	if !ok {
		return
	}
	switch s {
	case KindSequence:
	case KindBroadcast:
		c.Broadcast = &Broadcast{}
	default:
		d.errorf(n, "kind: unknown kind %q%s: a campaign is a sequence (the default) or a broadcast", s, DidYouMean(s, []string{KindSequence, KindBroadcast}))
	}
}

// broadcast reads and checks what a broadcast's campaign.md must and must
// not say; f are its fields.
func (d *doc) broadcast(root *yaml.Node, f map[string]*yaml.Node, c *Campaign) {
	if v := f["send_at"]; v != nil {
		if s, ok := d.str(v, "send_at"); ok {
			at, err := ParseSendAt(s)
			if err != nil {
				d.errorf(v, "send_at: %v", err)
			}
			at.Pos = d.valuePos(v)
			c.Broadcast.SendAt = at
		}
	} else {
		d.errorf(root, "send_at is missing: say when the broadcast goes out, as in send_at: 2027-01-12 09:00 local (09:00 in each customer's time zone) or 2027-01-12 09:00 Europe/Amsterdam")
	}
	if f["audience"] == nil {
		d.errorf(root, `audience is missing: say who gets the broadcast, as in audience: 'customer.stage == "active"' (or audience: 'true' for every customer)`)
	}
	for _, k := range []string{"trigger", "reentry", "event_data"} {
		if v := f[k]; v != nil {
			d.errorf(keyNode(root, k), "%s does not apply to a broadcast: it goes once to each customer of its audience at send_at", k)
		}
	}
	if v := f["exit"]; v != nil && v.Kind == yaml.MappingNode {
		if s := keyNode(v, "stage_left"); s != v {
			d.errorf(s, "exit.stage_left does not apply to a broadcast: it has no stage to leave (its audience is checked again at each customer's send time)")
		}
	}
	if c.Goal != nil && c.Goal.Within == 0 {
		c.Goal.Within = DefaultGoalWithin
	}
}

// holdout reads holdout: a percentage ("10%", "2.5%") of the customers who
// would enrol that are kept as a control group, in basis points.
func (d *doc) holdout(n *yaml.Node) int {
	s, ok := d.str(n, "holdout")
	if !ok {
		return 0
	}
	const help = "write the share of customers kept as a control group as a percentage between 0 and 50, as in holdout: 10%"
	t := strings.TrimSpace(s)
	if !strings.HasSuffix(t, "%") {
		d.errorf(n, "holdout: %q is not a percentage: %s", s, help)
		return 0
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(t, "%")), 64)
	bp := math.Round(v * 100)
	switch {
	case err != nil || math.IsNaN(v):
		d.errorf(n, "holdout: %q is not a percentage: %s", s, help)
		return 0
	case v <= 0 || v > 50:
		d.errorf(n, "holdout: %s is out of range: %s (a control group larger than the rest tells you little about the rest)", s, help)
		return 0
	case math.Abs(bp-v*100) > 1e-6:
		d.errorf(n, "holdout: %s is finer than 0.01%%: %s", s, help)
		return 0
	}
	return int(bp)
}

// ParseSendAt reads a broadcast's send_at: a date and time of day followed by
// "local" (that wall clock time in each customer's zone), an IANA zone name
// or "UTC", or an RFC 3339 instant with its offset.
//
//	2027-01-12 09:00 local
//	2027-01-12 09:00 Europe/Amsterdam
//	2027-01-12T09:00:00+01:00
func ParseSendAt(s string) (SendAt, error) {
	out := SendAt{Source: s}
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(s)); err == nil {
		out.Instant = t
		return out, nil
	}
	const help = "write a date, a time of day and where: 2027-01-12 09:00 local (in each customer's zone), 2027-01-12 09:00 Europe/Amsterdam, or an instant such as 2027-01-12T09:00:00+01:00"
	fields := strings.Fields(s)
	if len(fields) != 3 {
		if len(fields) == 2 {
			return out, fmt.Errorf("%q says no time zone: %s", s, help)
		}
		return out, fmt.Errorf("%q is not a send time: %s", s, help)
	}
	wall, err := time.Parse("2006-01-02 15:04", fields[0]+" "+fields[1])
	if err != nil {
		return out, fmt.Errorf("%q is not a send time (%s %s is not a date and a time of day as 2027-01-12 09:00): %s", s, fields[0], fields[1], help)
	}
	if fields[2] == "local" {
		out.Local, out.Date = true, wall
		return out, nil
	}
	loc, err := loadZone(fields[2])
	if err != nil {
		return out, fmt.Errorf("%q: unknown time zone %q: use an IANA name such as Europe/Amsterdam, UTC, or local", s, fields[2])
	}
	t := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), 0, 0, loc)
	if h, m, _ := t.Clock(); h != wall.Hour() || m != wall.Minute() {
		// A time the clocks skip (02:30 as they spring forward from 02:00
		// to 03:00) moves forward by the gap (03:30), as a local send_at
		// and a step's at: do.
		_, before := t.Zone()
		_, after := t.Add(3 * time.Hour).Zone()
		t = t.Add(time.Duration(after-before) * time.Second)
	}
	out.Instant = t
	return out, nil
}

func loadZone(name string) (*time.Location, error) {
	if !strings.Contains(name, "/") && name != "UTC" && name != "GMT" {
		return nil, fmt.Errorf("not a zone name")
	}
	return time.LoadLocation(name)
}

// checkBroadcastSteps reports what a broadcast's step files may not do: a
// broadcast is one email, sent at send_at.
func checkBroadcastSteps(c *Campaign, probs *Problems) {
	if !c.IsBroadcast() {
		return
	}
	for i, st := range c.Steps {
		if i > 0 {
			probs.Add(st.Content.Path, Pos{1, 1}, "a broadcast is one email, and %s is already it: move %s to a broadcast of its own", filepath.Base(c.Steps[0].Content.Path), filepath.Base(st.Content.Path))
			continue
		}
		if st.TimingPos != (Pos{}) {
			probs.Add(st.Content.Path, st.TimingPos, "delay and at do not apply to a broadcast's email: it goes out at the campaign's send_at")
		}
	}
}
