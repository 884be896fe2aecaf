package campaign

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// CampaignFile is the file that makes a folder a campaign.
const CampaignFile = "campaign.md"

// DefaultLayout is the layout of steps that name none.
const DefaultLayout = "default"

var (
	campaignIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// stepFileRE matches 01-welcome.md, 01-welcome.nl.md / 01-welcome.pt-BR.md
	// (locale variants: 2–3 letters), 01-welcome.b.md (an A/B variant: one
	// letter) and 01-welcome.b.nl.md (a locale variant of an A/B variant).
	stepFileRE = regexp.MustCompile(`^(\d+)-([a-z0-9][a-z0-9_-]*?)(?:\.([a-z]))?(?:\.([a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?))?\.md$`)
)

var (
	campaignKeys = []string{"name", "trigger", "audience", "exit", "goal", "reentry", "send_window", "topic", "from", "reply_to", "event_data", "kind", "send_at", "holdout"}
	stepKeys     = []string{"id", "subject", "preheader", "delay", "at", "only_if", "skip_if", "layout", "links"}
	variantKeys  = []string{"subject", "preheader", "layout"}
	// abKeys are the keys of an A/B variant's file (NN-name.b.md).
	abKeys = []string{"subject", "preheader", "layout", "split"}
)

// Load reads the campaigns directory dir: lifecycle.yaml and every campaign folder.
// When anything is wrong it returns the Set as far as it could be read together with
// a Problems error listing every problem; callers that only lint may keep going, but
// nothing should be sent from a Set that came with problems.
func Load(dir string) (*Set, error) {
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS is Load on a file system; name is the directory's name in messages and paths.
func LoadFS(fsys fs.FS, name string) (*Set, error) {
	var probs Problems
	set := &Set{Dir: name}
	lpath := filepath.Join(name, LifecycleFile)
	src, err := readText(fsys, LifecycleFile, lpath, &probs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, statErr := fs.Stat(fsys, "."); statErr != nil {
			return nil, fmt.Errorf("load campaigns: %s is not a directory: %w", name, statErr)
		}
		probs.Add(lpath, Pos{1, 1}, "missing %s: every campaigns directory declares its stages and transitions there", LifecycleFile)
		set.Lifecycle = parseLifecycle(lpath, "stages: []", new(Problems))
	case err != nil:
		return nil, fmt.Errorf("load campaigns: %w", err)
	default:
		set.Lifecycle = parseLifecycle(lpath, src, &probs)
	}
	env := newEnvs(set.Lifecycle)

	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("load campaigns: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		c, err := loadCampaign(fsys, name, e.Name(), set.Lifecycle, env, &probs)
		if err != nil {
			return nil, err
		}
		if c != nil {
			checkBroadcastSteps(c, &probs)
			set.Campaigns = append(set.Campaigns, c)
		}
	}
	return set, probs.Err()
}

func readFile(fsys fs.FS, name string) (string, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n"), nil
}

// readText is readFile for a file that must be UTF-8, named path in problems.
// One that is not (Latin-1, Windows-1252) is reported once, at its first byte
// that is not UTF-8, and read on with U+FFFD for such bytes, so that its other
// problems are reported too; the YAML parser would only say "invalid trailing
// UTF-8 octet".
func readText(fsys fs.FS, name, path string, probs *Problems) (string, error) {
	src, err := readFile(fsys, name)
	if err != nil || utf8.ValidString(src) {
		return src, err
	}
	i := 0
	for i < len(src) {
		r, size := utf8.DecodeRuneInString(src[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	start := strings.LastIndexByte(src[:i], '\n') + 1
	pos := Pos{strings.Count(src[:i], "\n") + 1, utf8.RuneCountInString(src[start:i]) + 1}
	probs.Add(path, pos, "the file is not UTF-8 (byte 0x%02X): save it as UTF-8", src[i])
	return strings.ToValidUTF8(src, "\uFFFD"), nil
}

func loadCampaign(fsys fs.FS, root, id string, l *Lifecycle, env envs, probs *Problems) (*Campaign, error) {
	dir := filepath.Join(root, id)
	c := &Campaign{ID: id, Path: filepath.Join(dir, CampaignFile)}
	src, err := readText(fsys, id+"/"+CampaignFile, c.Path, probs)
	if errors.Is(err, fs.ErrNotExist) {
		probs.Add(c.Path, Pos{1, 1}, "missing %s: a campaign folder needs one (or start the folder name with _ to keep it out)", CampaignFile)
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("load campaign %s: %w", id, err)
	}
	if !campaignIDRE.MatchString(id) {
		probs.Add(c.Path, Pos{1, 1}, "campaign folder %q must be lower case letters, digits, - and _ (it is the campaign's stable ID)", id)
	}
	fm, body, _, err := splitFrontMatter(src)
	if err != nil {
		probs.Add(c.Path, Pos{1, 1}, "%v", err)
		return nil, nil
	}
	c.Description = strings.TrimSpace(body)
	d := &doc{path: c.Path, lineOffset: 1, probs: probs}
	if root := d.parse(fm); root != nil {
		d.campaign(root, c, l, env)
	}

	entries, err := fs.ReadDir(fsys, id)
	if err != nil {
		return nil, fmt.Errorf("load campaign %s: %w", id, err)
	}
	variants := map[string][]*Content{} // by base file name
	var abFiles []abFile
	byName := map[string]*Step{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == CampaignFile || !strings.HasSuffix(name, ".md") || strings.EqualFold(name, "README.md") {
			continue
		}
		path := filepath.Join(dir, name)
		m := stepFileRE.FindStringSubmatch(name)
		if m == nil {
			probs.Add(path, Pos{1, 1}, "step file name %q must be NN-name.md, as in 01-welcome.md (or 01-welcome.nl.md for a locale variant, 01-welcome.b.md for an A/B variant)", name)
			continue
		}
		order, _ := strconv.Atoi(m[1])
		slug, ab, locale := m[2], m[3], m[4]
		if ab == VariantA {
			probs.Add(path, Pos{1, 1}, "variant a is the step's own file, %s-%s.md: name A/B variants b, c, …", m[1], slug)
			continue
		}
		src, err := readText(fsys, id+"/"+name, path, probs)
		if err != nil {
			return nil, fmt.Errorf("load step %s: %w", path, err)
		}
		if ab != "" {
			f := abFile{base: m[1] + "-" + slug + ".md", name: ab, locale: locale, v: &ABVariant{Name: ab}}
			if f.ct = loadVariantContent(path, src, locale, f.v, probs); f.ct != nil {
				abFiles = append(abFiles, f)
			}
			continue
		}
		if locale != "" {
			if ct := loadContent(path, src, locale, l, env, nil, probs); ct != nil {
				base := m[1] + "-" + slug + ".md"
				variants[base] = append(variants[base], ct)
			}
			continue
		}
		st := &Step{ID: id + "/" + slug, Slug: slug, Campaign: c, Order: order}
		if st.Content = loadContent(path, src, "", l, env, st, probs); st.Content == nil {
			continue
		}
		for _, other := range c.Steps {
			switch {
			case other.Order == order:
				probs.Add(path, Pos{1, 1}, "step order %s is also used by %s: give each step its own number", m[1], filepath.Base(other.Content.Path))
			case other.Slug == st.Slug && st.Slug != slug:
				probs.Add(path, st.IDPos, "step id %q is also the identity of %s: each step of a campaign needs its own", st.Slug, filepath.Base(other.Content.Path))
			case other.Slug == st.Slug:
				probs.Add(path, Pos{1, 1}, "step name %q is also the identity of %s: the name is the step's identity and must be unique in the campaign (or pin one with id:)", slug, filepath.Base(other.Content.Path))
			}
		}
		byName[name] = st
		c.Steps = append(c.Steps, st)
	}
	for base, cts := range variants {
		st := byName[base]
		for _, ct := range cts {
			if st == nil {
				probs.Add(ct.Path, Pos{1, 1}, "locale variant %s has no base step %s: add the default-locale file first", filepath.Base(ct.Path), base)
				continue
			}
			if st.Variants == nil {
				st.Variants = map[string]*Content{}
			}
			st.Variants[ct.Locale] = ct
		}
	}
	attachAB(abFiles, byName, probs)
	slices.SortStableFunc(c.Steps, func(a, b *Step) int { return a.Order - b.Order })
	if len(c.Steps) == 0 {
		probs.Add(c.Path, Pos{1, 1}, "campaign %q has no steps: add an email as %s/01-name.md", id, dir)
	}
	return c, nil
}

// campaign decodes campaign.md front matter into c.
func (d *doc) campaign(root *yaml.Node, c *Campaign, l *Lifecycle, env envs) {
	f := d.fields(root, "campaign.md", campaignKeys...)
	if v := f["kind"]; v != nil {
		d.kind(v, c)
	}
	if v := f["name"]; v != nil {
		c.Name, _ = d.str(v, "name")
	} else {
		d.errorf(root, "name is missing: give the campaign a name marketers recognise")
	}
	if v := f["trigger"]; v != nil {
		c.Trigger.Pos = d.pos(v)
		tf := d.fields(v, "trigger", "stage", "event", "where")
		if s := tf["stage"]; s != nil {
			if c.Trigger.Stage, _ = d.str(s, "trigger.stage"); c.Trigger.Stage != "" {
				d.stageRef(s, c.Trigger.Stage, l)
			}
		}
		if e := tf["event"]; e != nil {
			c.Trigger.Event, _ = d.str(e, "trigger.event")
		}
		if (tf["stage"] == nil) == (tf["event"] == nil) && v.Kind == yaml.MappingNode {
			d.errorf(v, "trigger needs exactly one of stage (enrol on entering a stage) or event (enrol on an event)")
		}
		if w := tf["where"]; w != nil {
			if c.Trigger.Event == "" {
				d.errorf(w, "where applies only to event triggers")
			}
			c.Trigger.Where = d.expr(w, "trigger.where", env[scopeEvent])
		}
	} else if !c.IsBroadcast() {
		d.errorf(root, "trigger is missing: say when customers enrol, as in trigger: {stage: onboarding} (or make it a one-off send with kind: broadcast)")
	}
	if v := f["audience"]; v != nil {
		c.Audience = d.expr(v, "audience", env[scopeCustomer])
	}
	if v := f["from"]; v != nil {
		if c.From = d.address(v, "from"); c.From != nil {
			dom := strings.ToLower(c.From.Address[strings.LastIndexByte(c.From.Address, '@')+1:])
			switch {
			case len(l.Sender.Domains) == 0:
				d.errorf(v, "from: declare the domains retain sends from in %s, as in sender: {domains: [%s]}, so that a typo cannot send from a domain without SPF, DKIM and DMARC", LifecycleFile, dom)
				c.From = nil
			case !slices.Contains(l.Sender.Domains, dom):
				d.errorf(v, "from: %s is not a sending domain declared in %s (sender.domains: %s)", dom, LifecycleFile, strings.Join(l.Sender.Domains, ", "))
				c.From = nil
			}
		}
	}
	if v := f["reply_to"]; v != nil {
		c.ReplyTo = d.address(v, "reply_to")
	}
	if v := f["event_data"]; v != nil {
		c.EventData = d.eventData(v, c)
	}
	if v := f["exit"]; v != nil {
		ef := d.fields(v, "exit", "events", "stage_left")
		if e := ef["events"]; e != nil {
			c.Exit.Events = d.strs(e, "exit.events")
		}
		if s := ef["stage_left"]; s != nil {
			c.Exit.StageLeft = d.boolean(s, "exit.stage_left")
			if c.Exit.StageLeft && c.Trigger.Stage == "" && tfHasEvent(c) {
				d.errorf(s, "exit.stage_left needs a stage trigger: an event-triggered campaign has no stage to leave")
			}
		}
	}
	if v := f["goal"]; v != nil {
		g := &Goal{}
		gf := d.fields(v, "goal", "event", "where", "within")
		if e := gf["event"]; e != nil {
			g.Event, _ = d.str(e, "goal.event")
		} else if v.Kind == yaml.MappingNode {
			d.errorf(v, "goal needs the event that counts as conversion (event:)")
		}
		if w := gf["where"]; w != nil {
			g.Where = d.expr(w, "goal.where", env[scopeEvent])
		}
		if w := gf["within"]; w != nil {
			g.Within = d.duration(w, "goal.within")
		}
		c.Goal = g
	}
	if v := f["reentry"]; v != nil {
		d.reentry(v, &c.Reentry)
	}
	if v := f["send_window"]; v != nil {
		w := &Window{Start: 0, End: 24 * 60}
		for i := range w.Days {
			w.Days[i] = true
		}
		wf := d.fields(v, "send_window", "days", "hours")
		if s := wf["days"]; s != nil {
			if txt, ok := d.str(s, "send_window.days"); ok {
				days, err := parseDays(txt)
				if err != nil {
					d.errorf(s, "send_window.days: %v", err)
				}
				w.Days = days
			}
		}
		if s := wf["hours"]; s != nil {
			if txt, ok := d.str(s, "send_window.hours"); ok {
				start, end, err := parseHours(txt)
				if err != nil {
					d.errorf(s, "send_window.hours: %v", err)
				} else {
					w.Start, w.End = start, end
				}
			}
		}
		c.SendWindow = w
	}
	if v := f["topic"]; v != nil {
		if c.Topic, _ = d.str(v, "topic"); c.Topic != "" && !campaignIDRE.MatchString(c.Topic) {
			d.errorf(v, "topic %q must be lower case letters, digits, - and _", c.Topic)
		}
	}
	if v := f["holdout"]; v != nil {
		c.Holdout = d.holdout(v)
	}
	if c.IsBroadcast() {
		d.broadcast(root, f, c)
	} else if v := f["send_at"]; v != nil {
		d.errorf(keyNode(root, "send_at"), "send_at applies to broadcasts: add kind: broadcast to send this campaign once, or give a sequence a trigger")
	}
}

func tfHasEvent(c *Campaign) bool { return c.Trigger.Event != "" }

func (d *doc) reentry(n *yaml.Node, r *Reentry) {
	const help = "use never, always or {after: 90d}"
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "never":
			r.Mode = ReentryNever
		case "always":
			r.Mode = ReentryAlways
		default:
			d.errorf(n, "reentry: unknown value %q%s: %s", n.Value, DidYouMean(n.Value, []string{"never", "always"}), help)
		}
		return
	}
	f := d.fields(n, "reentry", "after")
	if v := f["after"]; v != nil {
		r.Mode, r.After = ReentryAfter, d.duration(v, "reentry.after")
	} else if n.Kind == yaml.MappingNode {
		d.errorf(n, "reentry: %s", help)
	}
}

// loadContent parses one step file. For a base step, st receives the timing and
// conditions; for a locale variant st is nil and only content keys are allowed.
func loadContent(path, src, locale string, l *Lifecycle, env envs, st *Step, probs *Problems) *Content {
	return loadStepFile(path, src, locale, l, env, st, nil, probs)
}

// loadVariantContent parses the file of A/B variant v (NN-name.b.md, or one of
// its locale variants NN-name.b.nl.md): content keys only, and the variant's
// split in its default-locale file.
func loadVariantContent(path, src, locale string, v *ABVariant, probs *Problems) *Content {
	return loadStepFile(path, src, locale, nil, envs{}, nil, v, probs)
}

// loadStepFile is loadContent, and loadVariantContent when ab is set.
func loadStepFile(path, src, locale string, l *Lifecycle, env envs, st *Step, ab *ABVariant, probs *Problems) *Content {
	fm, body, bodyLine, err := splitFrontMatter(src)
	if err != nil {
		probs.Add(path, Pos{1, 1}, "%v", err)
		return nil
	}
	ct := &Content{Path: path, Locale: locale, Layout: DefaultLayout, Body: body, BodyLine: bodyLine, SubjectPos: Pos{1, 1}}
	d := &doc{path: path, lineOffset: 1, probs: probs}
	root := d.parse(fm)
	if root == nil {
		ct.FrontMatterInvalid = true
		return ct
	}
	var f map[string]*yaml.Node
	if st == nil {
		what, allowed := "a locale variant", variantKeys
		switch {
		case ab != nil && locale == "":
			what, allowed = "an A/B variant", abKeys
		case ab != nil:
			what = "a locale variant of an A/B variant"
		}
		all := append(slices.Clip(stepKeys), "split")
		f = d.fields(root, what, all...)
		for _, k := range all {
			switch {
			case f[k] == nil || slices.Contains(allowed, k):
			case k == "split" && ab != nil:
				d.errorf(keyNode(root, k), "split belongs in %s: the locale variants of an A/B variant share its split", abFileName(path, ab.Name))
			case k == "split":
				d.errorf(keyNode(root, k), "split belongs in an A/B variant's file (%s): a locale variant sets only %s", abFileName(path, "b"), strings.Join(variantKeys, ", "))
			default:
				d.errorf(keyNode(root, k), "%s belongs in the base step: %s sets only %s", k, what, strings.Join(allowed, ", "))
			}
		}
	} else {
		f = d.fields(root, "a step", append(slices.Clip(stepKeys), "split")...)
		if v := f["split"]; v != nil {
			d.errorf(keyNode(root, "split"), "split belongs in an A/B variant's file (%s): the step's own file (variant a) goes to the customers no variant takes", abFileName(path, "b"))
		}
	}
	if v := f["subject"]; v != nil {
		ct.Subject, ct.SubjectPos = v.Value, d.valuePos(v)
		if v.Kind != yaml.ScalarNode {
			d.errorf(v, "subject must be text, found %s", kindName(v))
		}
	}
	if v := f["preheader"]; v != nil {
		ct.Preheader, ct.PreheaderPos = v.Value, d.valuePos(v)
		if v.Kind != yaml.ScalarNode {
			d.errorf(v, "preheader must be text, found %s", kindName(v))
		}
	}
	if v := f["layout"]; v != nil {
		if s, ok := d.str(v, "layout"); ok {
			ct.Layout, ct.LayoutPos = s, d.pos(v)
		}
	}
	if ab != nil && locale == "" {
		d.split(root, f["split"], ab)
	}
	if st == nil {
		return ct
	}
	if v := f["id"]; v != nil {
		if id, ok := d.str(v, "id"); ok {
			if !campaignIDRE.MatchString(id) {
				d.errorf(v, "id %q must be lower case letters, digits, - and _, like a file name's slug (welcome, first-project)", id)
			} else {
				st.Slug, st.ID, st.IDPos = id, st.Campaign.ID+"/"+id, d.valuePos(v)
			}
		}
	}
	if v := f["delay"]; v != nil {
		st.Delay = d.duration(v, "delay")
		st.TimingPos = d.pos(keyNode(root, "delay"))
	}
	if v := f["at"]; v != nil {
		st.At = d.clock(v, "at")
		if st.TimingPos == (Pos{}) {
			st.TimingPos = d.pos(keyNode(root, "at"))
		}
	}
	if v := f["only_if"]; v != nil {
		st.OnlyIf = d.expr(v, "only_if", env[scopeCustomer])
	}
	if v := f["skip_if"]; v != nil {
		st.SkipIf = d.expr(v, "skip_if", env[scopeCustomer])
	}
	if v := f["links"]; v != nil {
		st.Links = d.stepLinks(v, l)
	}
	return ct
}

// stepLinks reads a step's links: name -> http(s) URL, as .Links.name in its
// templates beside lifecycle.yaml's; a name lifecycle.yaml declares is an
// error, so a link means one thing everywhere.
func (d *doc) stepLinks(n *yaml.Node, l *Lifecycle) map[string]string {
	out := map[string]string{}
	fields := d.fields(n, "links")
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch {
		case !linkNameRE.MatchString(k):
			d.errorf(keyNode(n, k), "link name %q must be letters, digits and _ (used as .Links.%s)", k, k)
			continue
		case l != nil && l.Links[k] != "":
			d.errorf(keyNode(n, k), "link %q is declared in %s already: give this step's link another name", k, LifecycleFile)
			continue
		case slices.Contains(builtinLinks, k):
			d.errorf(keyNode(n, k), "link %q is retain's own (.Links.%s): give this step's link another name", k, k)
			continue
		}
		u, ok := d.str(v, "links."+k)
		if !ok {
			continue
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			d.errorf(v, "links.%s must be an http or https URL, found %q", k, u)
			continue
		}
		out[k] = u
	}
	return out
}

// builtinLinks are the links retain makes for every email (render.Links).
var builtinLinks = []string{"Unsubscribe", "Preferences", "NPS"}

// MaxEventDataFields is how many fields a campaign's event_data may declare:
// they are kept with every enrollment, so they must stay few and small.
const MaxEventDataFields = 8

// eventData reads event_data: the fields of the trigger event its templates
// use, name -> type as attributes are declared.
func (d *doc) eventData(n *yaml.Node, c *Campaign) map[string]AttrType {
	if c.Trigger.Event == "" && c.Trigger.Stage != "" {
		d.errorf(n, "event_data needs an event trigger (trigger: {event: ...}): a campaign entered with a stage has no event to take data from")
		return nil
	}
	fields := d.fields(n, "event_data")
	out := map[string]AttrType{}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		if !nameRE.MatchString(k) {
			d.errorf(keyNode(n, k), "event_data field %q must be lower case letters, digits and _", k)
			continue
		}
		s, ok := d.str(v, "event_data."+k)
		if !ok {
			continue
		}
		if !slices.Contains(attrTypes, s) {
			d.errorf(v, "event_data.%s: unknown type %q%s; use one of %s", k, s, DidYouMean(s, attrTypes), strings.Join(attrTypes, ", "))
			continue
		}
		out[k] = AttrType(s)
	}
	if len(out) > MaxEventDataFields {
		d.errorf(n, "event_data declares %d fields; at most %d are kept with an enrollment (IDs and small values, such as the product and the order ID)", len(out), MaxEventDataFields)
	}
	return out
}
