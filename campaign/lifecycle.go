package campaign

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LifecycleFile is the name of the lifecycle file inside a campaigns directory.
const LifecycleFile = "lifecycle.yaml"

// ActivityEvent is the pseudo-event name that matches any event listed under activity.
const ActivityEvent = "activity"

var (
	nameRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	linkNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	// domainRE is a domain name: two or more labels of letters, digits and '-'.
	utmRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	domainRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)
)

var attrTypes = []string{string(AttrString), string(AttrInt), string(AttrFloat), string(AttrBool), string(AttrTime)}

// parseLifecycle decodes lifecycle.yaml. It returns a usable Lifecycle even when
// problems were found, so campaigns can still be checked against it.
func parseLifecycle(path, src string, probs *Problems) *Lifecycle {
	l := &Lifecycle{Path: path, Timezone: time.UTC, Locale: "en", Attributes: map[string]AttrType{}, Counters: map[string]string{}, Links: map[string]string{},
		BackfillGrace: DefaultBackfillGrace, Deliverability: DefaultDeliverability}
	d := &doc{path: path, probs: probs}
	root := d.parse(src)
	if root == nil {
		return l
	}
	f := d.fields(root, path, "timezone", "locale", "sender", "links", "attributes", "counters", "activity", "stages", "transitions", "backfill_grace", "deliverability", "utm")
	if n := f["backfill_grace"]; n != nil {
		l.BackfillGrace = d.duration(n, "backfill_grace")
	}
	l.Deliverability = d.deliverability(f["deliverability"])
	if n := f["utm"]; n != nil {
		uf := d.fields(n, "utm", "source", "medium")
		u := &UTM{}
		for key, into := range map[string]*string{"source": &u.Source, "medium": &u.Medium} {
			v := uf[key]
			if v == nil {
				d.errorf(n, "utm.%s is missing: give both, as in utm: {source: retain, medium: email}", key)
				continue
			}
			if s, ok := d.str(v, "utm."+key); ok {
				if !utmRE.MatchString(s) {
					d.errorf(v, "utm.%s %q must be letters, digits, - and _", key, s)
					continue
				}
				*into = s
			}
		}
		if u.Source != "" && u.Medium != "" {
			l.UTM = u
		}
	}
	if n := f["timezone"]; n != nil {
		if s, ok := d.str(n, "timezone"); ok {
			loc, err := loadLocation(s)
			if err != nil {
				d.errorf(n, "timezone: %v", err)
			} else {
				l.Timezone = loc
			}
		}
	}
	if n := f["locale"]; n != nil {
		if s, ok := d.str(n, "locale"); ok {
			l.Locale = s
		}
	}
	if n := f["sender"]; n != nil {
		sf := d.fields(n, "sender", "name", "address", "domains")
		if v := sf["name"]; v != nil {
			l.Sender.Name, _ = d.str(v, "sender.name")
		}
		if v := sf["address"]; v != nil {
			l.Sender.Address, _ = d.str(v, "sender.address")
		}
		if v := sf["domains"]; v != nil {
			for i, dom := range d.strs(v, "sender.domains") {
				if !domainRE.MatchString(dom) {
					d.errorf(v.Content[i], "sender.domains: %q is not a domain name such as acme.example", dom)
					continue
				}
				l.Sender.Domains = append(l.Sender.Domains, strings.ToLower(dom))
			}
		}
	}
	if n := f["links"]; n != nil {
		for k, v := range d.fields(n, "links") {
			if !linkNameRE.MatchString(k) {
				d.errorf(keyNode(n, k), "link name %q must be letters, digits and _ (used as .Links.%s)", k, k)
				continue
			}
			if s, ok := d.str(v, "links."+k); ok {
				if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "mailto:") {
					d.errorf(v, "links.%s must be an http, https or mailto URL, found %q", k, s)
				}
				l.Links[k] = s
			}
		}
	}
	if n := f["attributes"]; n != nil {
		for k, v := range d.fields(n, "attributes") {
			switch {
			case !nameRE.MatchString(k):
				d.errorf(keyNode(n, k), "attribute name %q must be lower case letters, digits and _", k)
			case slices.Contains(CustomerFields, k):
				d.errorf(keyNode(n, k), "attribute %q clashes with the built-in customer field of that name", k)
			default:
				if s, ok := d.str(v, "attributes."+k); ok {
					if !slices.Contains(attrTypes, s) {
						d.errorf(v, "attributes.%s: unknown type %q%s; use one of %s", k, s, DidYouMean(s, attrTypes), strings.Join(attrTypes, ", "))
					} else {
						l.Attributes[k] = AttrType(s)
					}
				}
			}
		}
	}
	if n := f["counters"]; n != nil {
		for k, v := range d.fields(n, "counters") {
			switch {
			case !nameRE.MatchString(k):
				d.errorf(keyNode(n, k), "counter name %q must be lower case letters, digits and _", k)
			case slices.Contains(CustomerFields, k) || l.Attributes[k] != "":
				d.errorf(keyNode(n, k), "counter %q clashes with a customer field or attribute of that name", k)
			default:
				if s, ok := d.str(v, "counters."+k); ok {
					l.Counters[k] = s
				}
			}
		}
	}
	if n := f["activity"]; n != nil {
		l.Activity = d.strs(n, "activity")
	}
	if n := f["stages"]; n != nil {
		l.Stages = d.stages(n)
	} else {
		d.errorf(root, "stages are missing: list the lifecycle stages, the first being where new customers start")
	}
	env := newEnvs(l)
	if n := f["transitions"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "transitions must be a list of rules, found %s", kindName(n))
		} else {
			for _, item := range n.Content {
				if t := d.transition(item, l, env); t != nil {
					l.Transitions = append(l.Transitions, t)
				}
			}
		}
	}
	d.checkReachable(l)
	return l
}

func (d *doc) stages(n *yaml.Node) []Stage {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "stages must be a list, found %s", kindName(n))
		return nil
	}
	var out []Stage
	seen := map[string]bool{}
	for _, item := range n.Content {
		st := Stage{Pos: d.pos(item)}
		if item.Kind == yaml.ScalarNode {
			st.Name = item.Value
		} else {
			sf := d.fields(item, "stage", "name", "description")
			if v := sf["name"]; v != nil {
				st.Name, _ = d.str(v, "name")
				st.Pos = d.pos(v)
			} else {
				d.errorf(item, "stage has no name")
				continue
			}
			if v := sf["description"]; v != nil {
				st.Description, _ = d.str(v, "description")
			}
		}
		switch {
		case !nameRE.MatchString(st.Name):
			d.probs.Add(d.path, st.Pos, "stage name %q must be lower case letters, digits and _", st.Name)
		case seen[st.Name]:
			d.probs.Add(d.path, st.Pos, "stage %q is listed twice", st.Name)
		default:
			seen[st.Name] = true
			out = append(out, st)
		}
	}
	return out
}

func (d *doc) transition(n *yaml.Node, l *Lifecycle, env envs) *Transition {
	f := d.fields(n, "transition", "on", "where", "after", "inactive", "from", "to")
	if n.Kind != yaml.MappingNode {
		return nil
	}
	t := &Transition{Pos: d.pos(n)}
	kinds := 0
	if v := f["on"]; v != nil {
		t.On, _ = d.str(v, "on")
		kinds++
	}
	if v := f["after"]; v != nil {
		t.After = d.duration(v, "after")
		kinds++
	}
	if v := f["inactive"]; v != nil {
		t.Inactive = d.duration(v, "inactive")
		kinds++
	}
	if kinds != 1 {
		d.errorf(n, "a transition needs exactly one of on (an event), after (time in stage) or inactive (time without activity)")
	}
	if v := f["where"]; v != nil {
		if t.On == "" {
			d.errorf(v, "where applies only to event transitions (on:)")
		}
		t.Where = d.expr(v, "where", env[scopeEvent])
	}
	if t.On == ActivityEvent && len(l.Activity) == 0 {
		d.errorf(f["on"], "on: activity needs the activity events listed under activity:")
	}
	if v := f["from"]; v != nil {
		t.From = d.strs(v, "from")
		for i, s := range t.From {
			d.stageRef(stageNode(v, i), s, l)
		}
	}
	if v := f["to"]; v != nil {
		if s, ok := d.str(v, "to"); ok {
			t.To = s
			d.stageRef(v, s, l)
		}
	} else {
		d.errorf(n, "transition has no target stage (to:)")
	}
	if kinds == 1 && (f["after"] != nil || f["inactive"] != nil) {
		if len(t.From) == 0 {
			d.errorf(n, "a time rule needs the stages it applies in (from:)")
		}
	}
	return t
}

// stageNode returns the i-th item of a from: list, or the scalar itself.
func stageNode(n *yaml.Node, i int) *yaml.Node {
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// stageRef reports a reference to a stage that lifecycle.yaml does not declare.
func (d *doc) stageRef(n *yaml.Node, name string, l *Lifecycle) {
	if l.HasStage(name) || len(l.Stages) == 0 {
		return // with no stages, lifecycle.yaml itself is already reported
	}
	names := l.StageNames()
	d.errorf(n, "unknown stage %q%s; stages are %s", name, DidYouMean(name, names), strings.Join(names, ", "))
}

// checkReachable reports stages other than the first that no transition leads to.
func (d *doc) checkReachable(l *Lifecycle) {
	reached := map[string]bool{}
	for _, t := range l.Transitions {
		reached[t.To] = true
	}
	for i, s := range l.Stages {
		if i > 0 && !reached[s.Name] {
			d.probs.Add(d.path, s.Pos, "stage %q is unreachable: no transition has to: %s", s.Name, s.Name)
		}
	}
}

// loadLocation loads an IANA time zone, suggesting a spelling on failure.
func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("give an IANA time zone such as Europe/Amsterdam or UTC")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: give an IANA name such as Europe/Amsterdam, America/New_York or UTC", name)
	}
	return loc, nil
}

// StageNames returns the stage names in order.
func (l *Lifecycle) StageNames() []string {
	out := make([]string, len(l.Stages))
	for i, s := range l.Stages {
		out[i] = s.Name
	}
	return out
}

// AttributeNames returns the declared attribute names, sorted.
func (l *Lifecycle) AttributeNames() []string {
	out := make([]string, 0, len(l.Attributes))
	for k := range l.Attributes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// deliverability reads the deliverability: section of lifecycle.yaml; a nil
// node is the defaults.
func (d *doc) deliverability(n *yaml.Node) Deliverability {
	dl := DefaultDeliverability
	if n == nil {
		return dl
	}
	f := d.fields(n, "deliverability", "soft_bounces", "soft_bounce_window", "pause_window", "pause_complaint_rate", "pause_bounce_rate")
	count := func(key string, min int, into *int) {
		if v := f[key]; v != nil {
			var i int
			if v.Kind != yaml.ScalarNode || v.Decode(&i) != nil || i < min {
				d.errorf(v, "deliverability.%s must be a whole number of at least %d, found %q", key, min, v.Value)
				return
			}
			*into = i
		}
	}
	count("soft_bounces", 1, &dl.SoftBounces)
	count("pause_window", 1, &dl.PauseWindow)
	if v := f["soft_bounce_window"]; v != nil {
		if w := d.duration(v, "deliverability.soft_bounce_window"); w > 0 {
			dl.SoftBounceWindow = w
		}
	}
	rate := func(key string, into *float64) {
		v := f[key]
		if v == nil {
			return
		}
		s, ok := d.str(v, "deliverability."+key)
		if !ok {
			return
		}
		r, err := parseRate(s)
		if err != nil {
			d.errorf(v, "deliverability.%s: %v", key, err)
			return
		}
		*into = r
	}
	rate("pause_complaint_rate", &dl.PauseComplaintRate)
	rate("pause_bounce_rate", &dl.PauseBounceRate)
	return dl
}

// parseRate reads a rate as a percentage ("0.3%") or a fraction ("0.003");
// "off" or 0 turns the check off.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return 0, nil
	}
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil || v < 0 || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a rate: write a percentage such as 0.3%%, or off", s)
	}
	if pct {
		v /= 100
	}
	if v > 1 {
		return 0, fmt.Errorf("%q is more than 100%%", s)
	}
	return v, nil
}
