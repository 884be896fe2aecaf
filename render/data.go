package render

import (
	"cmp"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
)

// Data is what a step's subject, preheader and body are executed with.
type Data struct {
	Customer Customer
	// Campaign and Step are filled in by Render from the compiled set.
	Campaign Campaign
	Step     Step
	// Event is the event that enrolled the customer in the email's campaign
	// (EventOf); empty for a campaign entered with a stage.
	Event  Event
	Links  Links
	Sender Sender
}

// Event is the event that enrolled the customer in an event-triggered
// campaign, as templates see it: .Event.Name, .Event.At, .Event.Data.product.
type Event struct {
	Name string
	At   time.Time
	// Data holds the fields the campaign declares (event_data:), typed by
	// their declaration; a declared field the event lacked is the zero value
	// of its type, as attributes are.
	Data EventData
}

// EventData are the declared data fields of a trigger event by name.
type EventData map[string]any

// EventOf returns the event that enrolled c in camp, typed by camp's
// event_data declarations: what the worker renders camp's steps with.
func EventOf(c *lifecycle.Customer, camp *campaign.Campaign) Event {
	if enr := c.Enrollments[camp.ID]; enr != nil && enr.Event != nil {
		return NewEvent(camp, enr.Event.Name, enr.Event.At, enr.Event.Data)
	}
	return NewEvent(camp, "", time.Time{}, nil)
}

// NewEvent returns the event name at at with data as camp's templates see
// it: the declared fields typed, a field missing or of another type the zero
// value of its type, undeclared fields left out.
func NewEvent(camp *campaign.Campaign, name string, at time.Time, data map[string]any) Event {
	ev := Event{Name: name, At: at}
	if len(camp.EventData) == 0 {
		return ev // nothing declared, nothing to read: no map per email
	}
	ev.Data = make(EventData, len(camp.EventData))
	for field, t := range camp.EventData {
		ev.Data[field] = t.Zero()
		if v, ok := data[field]; ok {
			if cv, err := t.Coerce(field, v); err == nil {
				ev.Data[field] = cv
			}
		}
	}
	return ev
}

// SampleEvent is a plausible trigger event of camp for previews and the
// trial execution in Compile: its trigger's name, SampleTime, and a sample
// value of each declared field's type. Empty for a stage-triggered campaign.
func SampleEvent(camp *campaign.Campaign) Event {
	ev := Event{Data: EventData{}}
	if camp.Trigger.Event == "" {
		return ev
	}
	ev.Name, ev.At = camp.Trigger.Event, SampleTime
	for name, t := range camp.EventData {
		ev.Data[name] = sampleValue(name, t)
	}
	return ev
}

// Customer is the recipient as templates see it.
type Customer struct {
	ID        string
	Email     string
	FirstName string
	Name      string
	Locale    string
	Timezone  string
	Stage     string
	// Attributes holds the attributes declared in lifecycle.yaml, typed by their
	// declaration: string, int, float64, bool or time.Time. Declared attributes a
	// customer lacks render as the zero value of their type, so that
	// {{ .Customer.Attributes.plan | default "free" }} works.
	Attributes Attributes
	// Counters holds the counters declared in lifecycle.yaml (orders, projects),
	// every one of them: NewData and SampleData fill in 0 for those a customer has
	// not counted yet.
	Counters Counters
	// lang is the language of the email being rendered (its step file's
	// locale, else lifecycle.yaml's): the formatting helpers write dates and
	// numbers in it, not in the customer's locale when no variant of the
	// step is in that.
	lang string
}

// Attributes are a customer's declared attributes by name.
type Attributes map[string]any

// Counters are a customer's lifecycle counters by name: {{ .Customer.Counters.orders }}.
type Counters map[string]int

// withCounters returns counts with every declared counter present, 0 where counts
// has none; a new map, so that templates never share the customer's.
func withCounters(counts map[string]int, declared map[string]string) Counters {
	if len(declared) == 0 {
		return nil
	}
	all := true
	for name := range declared {
		if _, ok := counts[name]; !ok {
			all = false
			break
		}
	}
	if all {
		// No copy per email: a counter the lifecycle does not declare
		// cannot be read (lint refuses it).
		return Counters(counts)
	}
	out := make(Counters, len(declared))
	for name := range declared {
		out[name] = counts[name]
	}
	return out
}

// Campaign is the campaign an email belongs to.
type Campaign struct {
	ID    string
	Name  string
	Topic string
}

// Step is the step an email belongs to.
type Step struct {
	ID   string // "onboarding/first-project"
	Slug string // "first-project"
}

// Sender is the organisation behind the emails, shown in every footer.
type Sender struct {
	Name    string
	Email   string
	Address string // postal address (CAN-SPAM)
}

// Links are the URLs templates may use as .Links.Name: LinkUnsubscribe and
// LinkPreferences (string), LinkNPS ([]NPSLink, scores 0–10) and every link declared in
// lifecycle.yaml (string). Build them with NewLinks or NewLazyLinks. A link may be
// lazy: made when an email first uses it, so that a step without an NPS question signs
// no score links.
type Links map[string]any

// URL returns link name as a string, made now if it is lazy; "" when there is no
// such string link.
func (l Links) URL(name string) string {
	s, _ := resolve(l[name]).(string)
	return s
}

// lazy is a link made by calling make when an email first uses it, and only then: at
// most once per Links, safe for concurrent renders. Programs make it where they read
// Links (mapKey, range, index); a template is executed with every lazy link of its
// Links made first (resolveLinks): text/template would see the pointer.
type lazy struct {
	once sync.Once
	make func() any
	v    any
	done atomic.Bool
}

func (l *lazy) value() any {
	l.once.Do(func() {
		l.v, l.make = l.make(), nil
		l.done.Store(true)
	})
	return l.v
}

// made returns the link if it was made already, without making it.
func (l *lazy) made() (any, bool) {
	if !l.done.Load() {
		return nil, false
	}
	return l.v, true
}

// resolve is v, or the link it makes if it is lazy.
func resolve(v any) any {
	if l, ok := v.(*lazy); ok {
		return l.value()
	}
	return v
}

// resolveLinks returns l with every lazy link made: l itself when it has none.
func resolveLinks(l Links) Links {
	for _, v := range l {
		if _, ok := v.(*lazy); ok {
			out := make(Links, len(l))
			for k, v := range l {
				out[k] = resolve(v)
			}
			return out
		}
	}
	return l
}

// Keys of the links every email has.
const (
	LinkUnsubscribe = "Unsubscribe"
	LinkPreferences = "Preferences"
	LinkNPS         = "NPS"
)

// NPSLink is one score of an NPS question: {{ range .Links.NPS }}[{{ .Score }}]({{ .URL }}) {{ end }}.
type NPSLink struct {
	Score int
	URL   string
}

// NewLinks returns the links of one email: the customer's signed unsubscribe and
// preference URLs, nps(score) for scores 0 to 10 (nil leaves .Links.NPS empty), and the
// fixed links of lifecycle.yaml. The NPS links are lazy: nps is called, for each score,
// only when the email uses .Links.NPS, once however often it does.
func NewLinks(unsubscribe, preferences string, nps func(score int) string, fixed map[string]string) Links {
	return newLinks(unsubscribe, preferences, nps, fixed)
}

// NewLazyLinks is NewLinks with the preference link made by preferences, only when the
// email uses .Links.Preferences.
func NewLazyLinks(unsubscribe string, preferences func() string, nps func(score int) string, fixed map[string]string) Links {
	return newLinks(unsubscribe, &lazy{make: func() any { return preferences() }}, nps, fixed)
}

func newLinks(unsubscribe string, preferences any, nps func(score int) string, fixed map[string]string) Links {
	l := make(Links, len(fixed)+3)
	for k, v := range fixed {
		l[k] = v
	}
	l[LinkUnsubscribe] = unsubscribe
	l[LinkPreferences] = preferences
	if nps == nil {
		l[LinkNPS] = []NPSLink(nil)
		return l
	}
	l[LinkNPS] = &lazy{make: func() any {
		scores := make([]NPSLink, 11)
		for i := range scores {
			scores[i] = NPSLink{Score: i, URL: nps(i)}
		}
		return scores
	}}
	return l
}

// NewData returns what a step is executed with when it is sent to customer c:
// the one place that decides it, so that the worker, retain preview, the web
// preview and the timeline show what is sent. The customer's locale is the
// lifecycle's when c has none; the time zone is the one eng schedules c in (the
// lifecycle's when c's is empty or unknown); the sender is lifecycle.yaml's,
// with from, the email part of the From address. links are the email's links
// (NewLinks), which depend on the campaign and on who signs them.
func NewData(eng *lifecycle.Engine, c *lifecycle.Customer, links Links, from string) *Data {
	lc := eng.Set().Lifecycle
	return &Data{
		Customer: Customer{ID: c.ID, Email: c.Email, FirstName: c.FirstName, Name: c.Name,
			Locale: cmp.Or(c.Locale, lc.Locale), Timezone: eng.Location(c).String(), Stage: c.Stage, Attributes: c.Attributes,
			Counters: withCounters(c.Counters, lc.Counters)},
		Links:  links,
		Sender: Sender{Name: lc.Sender.Name, Email: from, Address: lc.Sender.Address},
	}
}

// SampleTime is the moment sample time attributes are set to.
var SampleTime = time.Date(2026, time.March, 14, 9, 30, 0, 0, time.UTC)

// SampleData returns a plausible customer for previews and for the trial execution in
// Compile: every attribute declared in set.Lifecycle gets a sample value of its type,
// and every link points under baseURL ("https://example.com"); the fixed links of
// lifecycle.yaml are kept as they are. The sender comes from lifecycle.yaml; its Email
// is a placeholder the caller may overwrite with the configured From address.
func SampleData(set *campaign.Set, baseURL string) *Data {
	base := strings.TrimRight(baseURL, "/")
	d := &Data{
		Customer: Customer{
			ID:         "sample",
			Email:      "ada@example.com",
			FirstName:  "Ada",
			Name:       "Ada Lovelace",
			Locale:     "en",
			Timezone:   "UTC",
			Stage:      "onboarding",
			Attributes: Attributes{},
			Counters:   Counters{},
		},
		Sender: Sender{Name: "Example", Email: "hello@example.com", Address: "1 Example Street, Springfield"},
	}
	var fixed map[string]string
	if l := set.Lifecycle; l != nil {
		if l.Locale != "" {
			d.Customer.Locale = l.Locale
		}
		if l.Timezone != nil {
			d.Customer.Timezone = l.Timezone.String()
		}
		if len(l.Stages) > 0 {
			d.Customer.Stage = l.Stages[0].Name
		}
		if l.Sender.Name != "" {
			d.Sender.Name = l.Sender.Name
		}
		if l.Sender.Address != "" {
			d.Sender.Address = l.Sender.Address
		}
		for name, typ := range l.Attributes {
			d.Customer.Attributes[name] = sampleValue(name, typ)
		}
		for name := range l.Counters {
			d.Customer.Counters[name] = 3
		}
		fixed = l.Links
	}
	d.Links = NewLinks(base+"/u/sample", base+"/preferences/sample",
		func(score int) string { return fmt.Sprintf("%s/nps/sample/%d", base, score) }, fixed)
	return d
}

func sampleValue(name string, typ campaign.AttrType) any {
	switch typ {
	case campaign.AttrInt:
		return 3
	case campaign.AttrFloat:
		return 4.5
	case campaign.AttrBool:
		return true
	case campaign.AttrTime:
		return SampleTime
	}
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "company") || strings.Contains(n, "org"):
		return "Analytical Engines Ltd"
	case strings.Contains(n, "plan") || strings.Contains(n, "tier"):
		return "team"
	case strings.Contains(n, "city"):
		return "London"
	case strings.Contains(n, "country"):
		return "GB"
	case strings.Contains(n, "name") || strings.Contains(n, "manager"):
		return "Charles"
	case strings.Contains(n, "url") || strings.Contains(n, "link"):
		return "https://example.com/sample"
	}
	return "Sample " + strings.ReplaceAll(name, "_", " ")
}

// withDeclared returns attrs with every declared attribute present, copying only when
// one is missing.
func withDeclared(attrs Attributes, declared map[string]campaign.AttrType) Attributes {
	var out Attributes
	for name, typ := range declared {
		if _, ok := attrs[name]; ok {
			continue
		}
		if out == nil {
			out = make(Attributes, len(declared))
			maps.Copy(out, attrs)
		}
		out[name] = typ.Zero()
	}
	if out == nil {
		return attrs
	}
	return out
}

// withDeclaredEvent returns data with the zero value of each declared field
// it lacks (a caller that set no Event, a field the event did not carry);
// data itself when it lacks none.
func withDeclaredEvent(data EventData, declared map[string]campaign.AttrType) EventData {
	missing := false
	for name := range declared {
		if _, ok := data[name]; !ok {
			missing = true
			break
		}
	}
	if !missing {
		return data
	}
	out := make(EventData, len(declared))
	maps.Copy(out, data)
	for name, t := range declared {
		if _, ok := out[name]; !ok {
			out[name] = t.Zero()
		}
	}
	return out
}
