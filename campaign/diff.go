package campaign

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Diff is what changed from one campaign set to another, by campaign ID and step
// identity. Campaigns come sorted by ID, steps in file order.
type Diff struct {
	// Lifecycle is set when lifecycle.yaml changed in anything the engine or the
	// emails use: stages, transitions, declarations, timezone, locale, sender, links.
	Lifecycle bool
	// Added and Removed are the campaigns only in the new set and only in the old one.
	Added, Removed []*Campaign
	// Changed are the campaigns in both sets that differ.
	Changed []*CampaignDiff
}

// CampaignDiff is what changed in one campaign that both sets have.
type CampaignDiff struct {
	ID       string
	Old, New *Campaign
	// Settings lists the changes to campaign.md that customers in flight notice,
	// in key order: "trigger stage onboarding → stage active", "audience",
	// "exit events [a] → [a b]", "goal", "reentry never → after 90d",
	// "send_window", "topic".
	Settings []string
	// Added and Removed are the steps whose identity is only in the new campaign
	// and only in the old one, in file order.
	Added, Removed []*Step
	// Renamed pairs a removed step with an added one that stands in its place:
	// most likely one step whose file was renamed without id: pinning its
	// identity. Both steps of a pair are also in Added and Removed, as that is
	// what happens to customers in flight unless the new file sets id:.
	Renamed []Rename
	// Steps are the steps of both versions that moved or changed, in the new
	// file order.
	Steps []*StepDiff
}

// Rename is a likely rename: a removed and an added step in the same place.
type Rename struct {
	Old, New *Step
	// Reason says what the two have in common: "same body", "same order" (the
	// file number) or "same position" (among the campaign's steps).
	Reason string
}

// StepDiff is what changed in a step that both versions of a campaign have.
type StepDiff struct {
	Old, New *Step
	// Moved is set when the step changed places relative to the other steps the
	// two versions share; a new file number alone does not move a step.
	Moved bool
	// Changes says briefly what changed, in a fixed order: "moved 3 → 7",
	// "renumbered 3 → 4", "delay 1d → 2d", "at none → 09:30", "only_if",
	// "skip_if added", "subject", "preheader", "layout plain → default",
	// "body", "variant nl added", "variant de changed", "A/B variant b added
	// with split 50%", "A/B variant b split 50% → 30%", "A/B variant b changed".
	Changes []string
}

// Compare returns what changed from old to new, by campaign ID and step identity.
func Compare(old, new *Set) *Diff {
	d := compare(setEntries(old), setEntries(new), comparer{
		settings: func(o, n *campEntry) []string { return settingChanges(o.c, n.c) },
		step:     func(o, n *stepEntry) []string { return stepChanges(o.st, n.st) },
	})
	d.Lifecycle = lifecycleSum(lifecycleOf(old)) != lifecycleSum(lifecycleOf(new))
	return d
}

func lifecycleOf(s *Set) *Lifecycle {
	if s == nil {
		return nil
	}
	return s.Lifecycle
}

// Empty reports whether nothing changed.
func (d *Diff) Empty() bool {
	return !d.Lifecycle && len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// Lines describes the diff in one line per changed campaign (and one for
// lifecycle.yaml), fit for a log line or a lint message:
//
//	onboarding: step welcome-email added, step welcome removed (renamed to welcome-email?), step invite-team moved 3 → 7
//	winback: campaign added (3 steps)
func (d *Diff) Lines() []string {
	var out []string
	if d.Lifecycle {
		out = append(out, LifecycleFile+" changed")
	}
	for _, c := range d.campaignsInOrder() {
		switch {
		case c.added != nil:
			out = append(out, fmt.Sprintf("%s: campaign added (%s)", c.id, stepCount(len(c.added.Steps))))
		case c.removed != nil:
			out = append(out, fmt.Sprintf("%s: campaign removed (%s)", c.id, stepCount(len(c.removed.Steps))))
		default:
			cd := c.changed
			items := slices.Clone(cd.Settings)
			for _, st := range cd.Added {
				items = append(items, "step "+st.Slug+" added")
			}
			for _, st := range cd.Removed {
				s := "step " + st.Slug + " removed"
				if r := cd.renameOf(st); r != nil {
					s += " (renamed to " + r.New.Slug + "?)"
				}
				items = append(items, s)
			}
			for _, sd := range cd.Steps {
				items = append(items, sd.line())
			}
			out = append(out, cd.ID+": "+strings.Join(items, ", "))
		}
	}
	return out
}

// String is Lines joined with "; ", or "no changes".
func (d *Diff) String() string {
	if d.Empty() {
		return "no changes"
	}
	return strings.Join(d.Lines(), "; ")
}

// Summary names the campaigns and steps added, removed, renamed and moved, by
// identity, and counts the rest, for the one line a deploy logs:
//
//	onboarding: +welcome-email -welcome (renamed to welcome-email?) ~invite-team (moved 3 → 7), 2 steps edited; +winback (campaign, 3 steps)
func (d *Diff) Summary() string {
	var out []string
	if d.Lifecycle {
		out = append(out, LifecycleFile+" changed")
	}
	for _, c := range d.campaignsInOrder() {
		switch {
		case c.added != nil:
			out = append(out, fmt.Sprintf("+%s (campaign, %s)", c.id, stepCount(len(c.added.Steps))))
		case c.removed != nil:
			out = append(out, fmt.Sprintf("-%s (campaign, %s)", c.id, stepCount(len(c.removed.Steps))))
		default:
			cd := c.changed
			var ids []string
			for _, st := range cd.Added {
				ids = append(ids, "+"+st.Slug)
			}
			for _, st := range cd.Removed {
				s := "-" + st.Slug
				if r := cd.renameOf(st); r != nil {
					s += " (renamed to " + r.New.Slug + "?)"
				}
				ids = append(ids, s)
			}
			var edited, renumbered int
			for _, sd := range cd.Steps {
				switch {
				case sd.Moved:
					ids = append(ids, "~"+sd.New.Slug+" ("+strings.Join(sd.Changes, ", ")+")")
				case len(sd.Changes) == 1 && strings.HasPrefix(sd.Changes[0], "renumbered"):
					renumbered++
				default:
					edited++
				}
			}
			var items []string
			if len(ids) > 0 {
				items = append(items, strings.Join(ids, " "))
			}
			if len(cd.Settings) > 0 {
				items = append(items, "settings changed")
			}
			if edited > 0 {
				items = append(items, stepCount(edited)+" edited")
			}
			if renumbered > 0 {
				items = append(items, stepCount(renumbered)+" renumbered")
			}
			out = append(out, cd.ID+": "+strings.Join(items, ", "))
		}
	}
	return strings.Join(out, "; ")
}

// diffEntry is one campaign of a diff, whichever way it changed.
type diffEntry struct {
	id             string
	added, removed *Campaign
	changed        *CampaignDiff
}

// campaignsInOrder merges added, removed and changed campaigns by ID.
func (d *Diff) campaignsInOrder() []diffEntry {
	var all []diffEntry
	for _, c := range d.Added {
		all = append(all, diffEntry{id: c.ID, added: c})
	}
	for _, c := range d.Removed {
		all = append(all, diffEntry{id: c.ID, removed: c})
	}
	for _, c := range d.Changed {
		all = append(all, diffEntry{id: c.ID, changed: c})
	}
	slices.SortStableFunc(all, func(a, b diffEntry) int { return strings.Compare(a.id, b.id) })
	return all
}

func (cd *CampaignDiff) renameOf(removed *Step) *Rename {
	for i := range cd.Renamed {
		if cd.Renamed[i].Old == removed {
			return &cd.Renamed[i]
		}
	}
	return nil
}

func (sd *StepDiff) line() string {
	slug := sd.New.Slug
	if sd.Moved {
		s := "step " + slug + " " + sd.Changes[0]
		if len(sd.Changes) > 1 {
			s += " (" + strings.Join(sd.Changes[1:], ", ") + ")"
		}
		return s
	}
	return "step " + slug + " changed (" + strings.Join(sd.Changes, ", ") + ")"
}

// stepCount writes "1 step", "3 steps".
func stepCount(n int) string {
	if n == 1 {
		return "1 step"
	}
	return fmt.Sprintf("%d steps", n)
}

// campEntry and stepEntry are what the comparison needs of a campaign and a
// step, from a loaded Set or from a Manifest.
type campEntry struct {
	c     *Campaign
	steps []*stepEntry
	sum   string // settings digest (manifests)
}

type stepEntry struct {
	st   *Step
	pos  int    // index among the campaign's steps
	body string // digest of the trimmed default-locale body; "" when blank
	sum  string // digest of what the step sends (manifests)
}

// comparer says what changed in a campaign's settings and in a step, which
// depends on how much the two sides know.
type comparer struct {
	settings func(o, n *campEntry) []string
	step     func(o, n *stepEntry) []string
}

func setEntries(s *Set) map[string]*campEntry {
	out := map[string]*campEntry{}
	if s == nil {
		return out
	}
	for _, c := range s.Campaigns {
		e := &campEntry{c: c}
		for i, st := range c.Steps {
			e.steps = append(e.steps, &stepEntry{st: st, pos: i, body: bodyKey(st.Content)})
		}
		out[c.ID] = e
	}
	return out
}

// compare is Compare and CompareManifests: campaigns by ID, steps by identity.
func compare(old, new map[string]*campEntry, how comparer) *Diff {
	d := &Diff{}
	ids := slices.Sorted(maps.Keys(old))
	for id := range new {
		if _, ok := old[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		o, n := old[id], new[id]
		switch {
		case o == nil:
			d.Added = append(d.Added, n.c)
		case n == nil:
			d.Removed = append(d.Removed, o.c)
		default:
			if cd := compareCampaign(o, n, how); cd != nil {
				d.Changed = append(d.Changed, cd)
			}
		}
	}
	return d
}

func compareCampaign(o, n *campEntry, how comparer) *CampaignDiff {
	cd := &CampaignDiff{ID: n.c.ID, Old: o.c, New: n.c, Settings: how.settings(o, n)}
	oldByID := map[string]*stepEntry{}
	for _, e := range o.steps {
		oldByID[e.st.ID] = e
	}
	newByID := map[string]*stepEntry{}
	for _, e := range n.steps {
		newByID[e.st.ID] = e
	}
	var removed, added []*stepEntry
	for _, e := range o.steps {
		if newByID[e.st.ID] == nil {
			removed = append(removed, e)
			cd.Removed = append(cd.Removed, e.st)
		}
	}
	for _, e := range n.steps {
		if oldByID[e.st.ID] == nil {
			added = append(added, e)
			cd.Added = append(cd.Added, e.st)
		}
	}
	cd.Renamed = pairRenames(removed, added)

	// Steps in both, in old file order, with their new positions: those off
	// the longest increasing run are the ones that moved.
	var common []*stepEntry
	var newPos []int
	for _, e := range o.steps {
		if ne := newByID[e.st.ID]; ne != nil {
			common = append(common, e)
			newPos = append(newPos, ne.pos)
		}
	}
	kept := longestIncreasing(newPos)
	moved := map[string]bool{}
	for i, e := range common {
		if !kept[i] {
			moved[e.st.ID] = true
		}
	}
	for _, ne := range n.steps {
		oe := oldByID[ne.st.ID]
		if oe == nil {
			continue
		}
		sd := &StepDiff{Old: oe.st, New: ne.st, Moved: moved[ne.st.ID]}
		switch {
		case sd.Moved && oe.st.Order != ne.st.Order:
			sd.Changes = append(sd.Changes, fmt.Sprintf("moved %d → %d", oe.st.Order, ne.st.Order))
		case sd.Moved:
			sd.Changes = append(sd.Changes, fmt.Sprintf("moved from position %d to %d", oe.pos+1, ne.pos+1))
		case oe.st.Order != ne.st.Order:
			sd.Changes = append(sd.Changes, fmt.Sprintf("renumbered %d → %d", oe.st.Order, ne.st.Order))
		}
		sd.Changes = append(sd.Changes, how.step(oe, ne)...)
		if len(sd.Changes) > 0 {
			cd.Steps = append(cd.Steps, sd)
		}
	}
	if len(cd.Settings) == 0 && len(cd.Added) == 0 && len(cd.Removed) == 0 && len(cd.Steps) == 0 {
		return nil
	}
	return cd
}

// pairRenames pairs removed and added steps that stand in the same place, each
// at most once: first by identical default-locale body (the strongest sign),
// then by file number, then by position among the campaign's steps.
func pairRenames(removed, added []*stepEntry) []Rename {
	var out []Rename
	usedOld, usedNew := map[*stepEntry]bool{}, map[*stepEntry]bool{}
	for _, rule := range []struct {
		reason string
		same   func(o, n *stepEntry) bool
	}{
		{"same body", func(o, n *stepEntry) bool { return o.body != "" && o.body == n.body }},
		{"same order", func(o, n *stepEntry) bool { return o.st.Order == n.st.Order }},
		{"same position", func(o, n *stepEntry) bool { return o.pos == n.pos }},
	} {
		for _, o := range removed {
			if usedOld[o] {
				continue
			}
			for _, n := range added {
				if !usedNew[n] && rule.same(o, n) {
					usedOld[o], usedNew[n] = true, true
					out = append(out, Rename{Old: o.st, New: n.st, Reason: rule.reason})
					break
				}
			}
		}
	}
	// In the old file order, whichever rule paired them.
	slices.SortStableFunc(out, func(a, b Rename) int { return a.Old.Order - b.Old.Order })
	return out
}

// longestIncreasing marks one longest strictly increasing subsequence of a.
func longestIncreasing(a []int) []bool {
	length, prev := make([]int, len(a)), make([]int, len(a))
	best := -1
	for i := range a {
		length[i], prev[i] = 1, -1
		for j := range i {
			if a[j] < a[i] && length[j]+1 > length[i] {
				length[i], prev[i] = length[j]+1, j
			}
		}
		if best < 0 || length[i] > length[best] {
			best = i
		}
	}
	kept := make([]bool, len(a))
	for i := best; i >= 0; i = prev[i] {
		kept[i] = true
	}
	return kept
}

// settingChanges lists the campaign-level changes that customers in flight notice.
func settingChanges(o, n *Campaign) []string {
	var out []string
	if a, b := describeTrigger(o.Trigger), describeTrigger(n.Trigger); a != b {
		out = append(out, "trigger "+a+" → "+b)
	}
	out = appendExprChange(out, "audience", o.Audience, n.Audience)
	if a, b := "["+strings.Join(o.Exit.Events, " ")+"]", "["+strings.Join(n.Exit.Events, " ")+"]"; a != b {
		out = append(out, "exit events "+a+" → "+b)
	}
	if o.Exit.StageLeft != n.Exit.StageLeft {
		out = append(out, fmt.Sprintf("exit stage_left %t → %t", o.Exit.StageLeft, n.Exit.StageLeft))
	}
	if a, b := describeGoal(o.Goal), describeGoal(n.Goal); a != b {
		out = append(out, "goal "+a+" → "+b)
	}
	if a, b := describeReentry(o.Reentry), describeReentry(n.Reentry); a != b {
		out = append(out, "reentry "+a+" → "+b)
	}
	if a, b := describeWindow(o.SendWindow), describeWindow(n.SendWindow); a != b {
		out = append(out, "send_window "+a+" → "+b)
	}
	if o.Topic != n.Topic {
		out = append(out, "topic "+orNone(o.Topic)+" → "+orNone(n.Topic))
	}
	if a, b := describeKind(o), describeKind(n); a != b {
		out = append(out, "kind "+a+" → "+b)
	}
	if o.Holdout != n.Holdout {
		out = append(out, "holdout "+describeHoldout(o.Holdout)+" → "+describeHoldout(n.Holdout))
	}
	return out
}

// describeKind is a campaign's kind, with a broadcast's send_at.
func describeKind(c *Campaign) string {
	if c.IsBroadcast() {
		return KindBroadcast + " at " + c.Broadcast.SendAt.Source
	}
	return KindSequence
}

func describeHoldout(bp int) string {
	if bp == 0 {
		return "none"
	}
	return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%"
}

// stepChanges lists what changed in a step's timing, conditions and content.
func stepChanges(o, n *Step) []string {
	var out []string
	if o.Delay != n.Delay {
		out = append(out, "delay "+FormatDuration(o.Delay)+" → "+FormatDuration(n.Delay))
	}
	if a, b := clockText(o.At), clockText(n.At); a != b {
		out = append(out, "at "+orNone(a)+" → "+orNone(b))
	}
	out = appendExprChange(out, "only_if", o.OnlyIf, n.OnlyIf)
	out = appendExprChange(out, "skip_if", o.SkipIf, n.SkipIf)
	out = append(out, contentChanges(o.Content, n.Content)...)
	for _, loc := range slices.Sorted(maps.Keys(unionKeys(o.Variants, n.Variants))) {
		a, b := o.Variants[loc], n.Variants[loc]
		switch {
		case a == nil:
			out = append(out, "variant "+loc+" added")
		case b == nil:
			out = append(out, "variant "+loc+" removed")
		case len(contentChanges(a, b)) > 0:
			out = append(out, "variant "+loc+" changed")
		}
	}
	return append(out, abChanges(o, n)...)
}

// abChanges lists what changed in a step's A/B variants: "A/B variant b
// added with split 50%", "A/B variant b removed", "A/B variant b split 50% →
// 30%", "A/B variant b changed" (its subject, preheader, layout or body, in
// any locale, or a locale added or removed).
func abChanges(o, n *Step) []string {
	names := map[string]bool{}
	for _, v := range o.AB {
		names[v.Name] = true
	}
	for _, v := range n.AB {
		names[v.Name] = true
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(names)) {
		a, b := o.ABVariant(name), n.ABVariant(name)
		what := "A/B variant " + name
		switch {
		case a == nil:
			out = append(out, fmt.Sprintf("%s added with split %d%%", what, b.Split))
			continue
		case b == nil:
			out = append(out, what+" removed")
			continue
		}
		if a.Split != b.Split {
			out = append(out, fmt.Sprintf("%s split %d%% → %d%%", what, a.Split, b.Split))
		}
		changed := len(contentChanges(a.Content, b.Content)) > 0
		for loc := range unionKeys(a.Locales, b.Locales) {
			if x, y := a.Locales[loc], b.Locales[loc]; x == nil || y == nil || len(contentChanges(x, y)) > 0 {
				changed = true
			}
		}
		if changed {
			out = append(out, what+" changed")
		}
	}
	return out
}

func contentChanges(o, n *Content) []string {
	if o == nil || n == nil {
		if (o == nil) != (n == nil) {
			return []string{"content"}
		}
		return nil
	}
	var out []string
	if o.Subject != n.Subject {
		out = append(out, "subject")
	}
	if o.Preheader != n.Preheader {
		out = append(out, "preheader")
	}
	if o.Layout != n.Layout {
		out = append(out, "layout "+o.Layout+" → "+n.Layout)
	}
	if o.Body != n.Body {
		out = append(out, "body")
	}
	return out
}

func unionKeys(a, b map[string]*Content) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func appendExprChange(out []string, key string, o, n *Expr) []string {
	switch a, b := exprText(o), exprText(n); {
	case a == b:
		return out
	case a == "":
		return append(out, key+" added")
	case b == "":
		return append(out, key+" removed")
	}
	return append(out, key)
}

func exprText(e *Expr) string {
	if e == nil {
		return ""
	}
	return e.Source
}

func clockText(c *Clock) string {
	if c == nil {
		return ""
	}
	return c.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func describeTrigger(t Trigger) string {
	var s string
	switch {
	case t.Stage != "":
		s = "stage " + t.Stage
	case t.Event != "":
		s = "event " + t.Event
	default:
		return "none"
	}
	if t.Where != nil {
		s += " where " + t.Where.Source
	}
	return s
}

func describeGoal(g *Goal) string {
	if g == nil {
		return "none"
	}
	s := "event " + g.Event
	if g.Where != nil {
		s += " where " + g.Where.Source
	}
	if g.Within > 0 {
		s += " within " + FormatDuration(g.Within)
	}
	return s
}

func describeReentry(r Reentry) string {
	switch r.Mode {
	case ReentryAlways:
		return "always"
	case ReentryAfter:
		return "after " + FormatDuration(r.After)
	}
	return "never"
}

// describeWindow writes a send window as campaign files do: "mon-fri 09:00-17:00".
func describeWindow(w *Window) string {
	if w == nil {
		return "none"
	}
	// Runs of days, Monday first, as "mon-fri,sun".
	var runs []string
	order := []int{1, 2, 3, 4, 5, 6, 0}
	for i := 0; i < len(order); {
		if !w.Days[order[i]] {
			i++
			continue
		}
		j := i
		for j+1 < len(order) && w.Days[order[j+1]] {
			j++
		}
		run := weekdays[order[i]]
		if j > i {
			run += "-" + weekdays[order[j]]
		}
		runs = append(runs, run)
		i = j + 1
	}
	days := strings.Join(runs, ",")
	switch days {
	case "mon-sun":
		days = "daily"
	case "":
		days = "never"
	}
	return days + " " + w.Start.String() + "-" + w.End.String()
}
