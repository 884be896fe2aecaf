package campaign

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// Manifest is a campaign set in small form: its content hash and, per campaign,
// the step identities in file order with digests of what they send. A deploy
// stores it so that the next start can name the campaigns and steps it added,
// removed, renamed and moved without the old files (CompareManifests). It is
// plain JSON; encoding/json writes the campaigns in ID order.
type Manifest struct {
	// Hash is Set.Hash.
	Hash string `json:"hash"`
	// Lifecycle is a digest of lifecycle.yaml as the engine uses it.
	Lifecycle string                       `json:"lifecycle"`
	Campaigns map[string]*ManifestCampaign `json:"campaigns"`
}

// ManifestCampaign is one campaign of a Manifest.
type ManifestCampaign struct {
	// Settings is a digest of campaign.md's front matter.
	Settings string         `json:"settings"`
	Steps    []ManifestStep `json:"steps"`
}

// ManifestStep is one step of a Manifest.
type ManifestStep struct {
	// ID is the step identity, "onboarding/welcome".
	ID    string `json:"id"`
	Order int    `json:"order"`
	// File is the step's file name, "01-welcome.md".
	File string `json:"file"`
	// Sum is a digest of the step's timing, conditions, content and variants.
	Sum string `json:"sum"`
	// Body is a digest of the default-locale body (empty when blank), which
	// pairs a removed and an added step as a likely rename.
	Body string `json:"body,omitempty"`
}

// Hash returns a stable hash of everything in the set that decides what is sent
// and when: lifecycle.yaml as the engine reads it, each campaign's settings, and
// each step's identity, order, timing, conditions, content and locale variants.
// It leaves out file paths (so the campaigns directory may live anywhere),
// campaign descriptions and stage descriptions. Layouts live in templates/, not
// in the Set, and are not covered. The hash is 16 hex digits of a SHA-256.
func (s *Set) Hash() string { return s.Manifest().Hash }

// Manifest returns the set's manifest.
func (s *Set) Manifest() *Manifest {
	m := &Manifest{Lifecycle: lifecycleSum(s.Lifecycle), Campaigns: map[string]*ManifestCampaign{}}
	d := newDigest()
	d.put("lifecycle", m.Lifecycle)
	campaigns := slices.Clone(s.Campaigns)
	slices.SortFunc(campaigns, func(a, b *Campaign) int { return strings.Compare(a.ID, b.ID) })
	for _, c := range campaigns {
		mc := &ManifestCampaign{Settings: settingsSum(c), Steps: []ManifestStep{}}
		d.put("campaign", c.ID, mc.Settings)
		for _, st := range c.Steps {
			ms := ManifestStep{ID: st.ID, Order: st.Order, Sum: stepSum(st), Body: bodyKey(st.Content)}
			if st.Content != nil {
				ms.File = filepath.Base(st.Content.Path)
			}
			d.put("step", ms.ID, ms.Order, ms.Sum)
			mc.Steps = append(mc.Steps, ms)
		}
		m.Campaigns[c.ID] = mc
	}
	m.Hash = d.sum()
	return m
}

// Steps counts the steps of every campaign.
func (m *Manifest) Steps() int {
	n := 0
	for _, c := range m.Campaigns {
		n += len(c.Steps)
	}
	return n
}

// CompareManifests is Compare for two manifests. It knows identities, file
// numbers and digests only, so it reports campaigns and steps added, removed,
// renamed and moved as Compare does, but says only "settings changed" of a
// campaign and "edited" of a step where Compare says what changed. The Steps
// and Campaigns of the returned Diff carry what the manifest holds: ID, Slug,
// Order, Campaign.ID and Content.Path (the file name).
func CompareManifests(old, new *Manifest) *Diff {
	d := compare(manifestEntries(old), manifestEntries(new), comparer{
		settings: func(o, n *campEntry) []string {
			if o.sum != n.sum {
				return []string{"settings changed"}
			}
			return nil
		},
		step: func(o, n *stepEntry) []string {
			if o.sum != n.sum {
				return []string{"edited"}
			}
			return nil
		},
	})
	d.Lifecycle = old != nil && new != nil && old.Lifecycle != new.Lifecycle
	return d
}

// manifestEntries rebuilds a skeleton of the campaigns and steps a manifest names.
func manifestEntries(m *Manifest) map[string]*campEntry {
	out := map[string]*campEntry{}
	if m == nil {
		return out
	}
	for id, mc := range m.Campaigns {
		if mc == nil {
			continue
		}
		c := &Campaign{ID: id}
		e := &campEntry{c: c, sum: mc.Settings}
		for i, ms := range mc.Steps {
			_, slug, _ := strings.Cut(ms.ID, "/")
			st := &Step{ID: ms.ID, Slug: slug, Campaign: c, Order: ms.Order, Content: &Content{Path: ms.File}}
			c.Steps = append(c.Steps, st)
			e.steps = append(e.steps, &stepEntry{st: st, pos: i, body: ms.Body, sum: ms.Sum})
		}
		out[id] = e
	}
	return out
}

// digest hashes fields written one per line, each value quoted, so that no two
// different inputs write the same bytes.
type digest struct{ h hash.Hash }

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) put(name string, vals ...any) {
	io.WriteString(d.h, name)
	for _, v := range vals {
		fmt.Fprintf(d.h, " %q", fmt.Sprint(v))
	}
	io.WriteString(d.h, "\n")
}

// list writes a list of strings as one field.
func (d *digest) list(name string, vals []string) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	d.put(name, args...)
}

func (d *digest) sum() string { return hex.EncodeToString(d.h.Sum(nil))[:16] }

// lifecycleSum digests what the engine and the emails use of lifecycle.yaml.
func lifecycleSum(l *Lifecycle) string {
	d := newDigest()
	if l == nil {
		d.put("none")
		return d.sum()
	}
	d.list("stages", l.StageNames())
	d.list("activity", l.Activity)
	for _, t := range l.Transitions {
		d.list("from", t.From)
		d.put("transition", t.To, t.On, exprText(t.Where), t.After, t.Inactive)
	}
	for _, k := range slices.Sorted(maps.Keys(l.Attributes)) {
		d.put("attribute", k, l.Attributes[k])
	}
	for _, k := range slices.Sorted(maps.Keys(l.Counters)) {
		d.put("counter", k, l.Counters[k])
	}
	tz := ""
	if l.Timezone != nil {
		tz = l.Timezone.String()
	}
	d.put("timezone", tz)
	d.put("locale", l.Locale)
	d.put("sender", l.Sender.Name, l.Sender.Address)
	for _, k := range slices.Sorted(maps.Keys(l.Links)) {
		d.put("link", k, l.Links[k])
	}
	return d.sum()
}

// settingsSum digests campaign.md's front matter.
func settingsSum(c *Campaign) string {
	d := newDigest()
	d.put("name", c.Name)
	d.put("trigger", c.Trigger.Stage, c.Trigger.Event, exprText(c.Trigger.Where))
	d.put("audience", exprText(c.Audience))
	d.list("exit", c.Exit.Events)
	d.put("stage_left", c.Exit.StageLeft)
	d.put("goal", describeGoal(c.Goal))
	d.put("reentry", c.Reentry.Mode, c.Reentry.After)
	if w := c.SendWindow; w != nil {
		d.put("send_window", w.Days, w.Start, w.End)
	} else {
		d.put("send_window")
	}
	d.put("topic", c.Topic)
	return d.sum()
}

// stepSum digests a step's timing, conditions, content, locale variants and
// A/B variants (their splits too): not its
// identity or order, which the manifest keeps apart.
func stepSum(st *Step) string {
	d := newDigest()
	d.put("delay", st.Delay)
	d.put("at", clockText(st.At))
	d.put("only_if", exprText(st.OnlyIf))
	d.put("skip_if", exprText(st.SkipIf))
	putContent(d, "content", st.Content)
	for _, loc := range slices.Sorted(maps.Keys(st.Variants)) {
		putContent(d, "variant "+loc, st.Variants[loc])
	}
	// Only steps with A/B variants write them, so that the digests of every
	// other step stay those of manifests stored before A/B variants.
	for _, v := range st.AB {
		d.put("ab", v.Name, v.Split)
		putContent(d, "ab "+v.Name, v.Content)
		for _, loc := range slices.Sorted(maps.Keys(v.Locales)) {
			putContent(d, "ab "+v.Name+" "+loc, v.Locales[loc])
		}
	}
	return d.sum()
}

func putContent(d *digest, name string, c *Content) {
	if c == nil {
		d.put(name)
		return
	}
	d.put(name, c.Locale, c.Subject, c.Preheader, c.Layout, c.Body)
}

// bodyKey digests a content's body for rename pairing; "" when it is blank, as
// blank bodies say nothing about which step is which.
func bodyKey(c *Content) string {
	if c == nil || strings.TrimSpace(c.Body) == "" {
		return ""
	}
	d := newDigest()
	d.put("body", strings.TrimSpace(c.Body))
	return d.sum()
}
