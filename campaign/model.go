package campaign

import (
	"net/mail"
	"slices"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Set is everything loaded from one campaigns directory.
type Set struct {
	// Dir is the campaigns directory as given to Load.
	Dir       string
	Lifecycle *Lifecycle
	// Campaigns are sorted by ID.
	Campaigns []*Campaign
}

// Campaign returns the campaign with the given ID, or nil.
func (s *Set) Campaign(id string) *Campaign {
	for _, c := range s.Campaigns {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// Step returns the step with the given identity ("onboarding/first-project"), or nil.
func (s *Set) Step(id string) *Step {
	for _, c := range s.Campaigns {
		for _, st := range c.Steps {
			if st.ID == id {
				return st
			}
		}
	}
	return nil
}

// Pos is a 1-based line and column in a campaign file.
type Pos struct {
	Line, Col int
}

// Lifecycle is campaigns/lifecycle.yaml: the stages a customer moves through, the rules
// that move them, and what campaigns may refer to (attributes, counters, links, sender).
type Lifecycle struct {
	Path string
	// Stages in the order they are listed; the first is where new customers start.
	Stages []Stage
	// Activity lists the event names that count as activity for "inactive" time rules.
	Activity []string
	// Transitions in file order; the first that matches wins.
	Transitions []*Transition
	// Attributes declares the customer attributes expressions and templates may use.
	Attributes map[string]AttrType
	// Counters maps a counter name ("orders") to the event it counts ("order_placed").
	Counters map[string]string
	// Timezone is used for customers without one of their own (default UTC).
	Timezone *time.Location
	// Locale is used for customers without one of their own (default "en").
	Locale string
	// Sender is the organisation behind the emails, shown in every footer.
	Sender Sender
	// Links are fixed URLs templates may use as .Links.Name.
	Links map[string]string
	// BackfillGrace is how far in the past a step may be due when the event
	// that schedules it is applied (a backfill) and still be sent; one due
	// earlier is skipped as stale. Default DefaultBackfillGrace.
	BackfillGrace time.Duration
	// Deliverability is what retain does with bounces and complaints
	// (deliverability: in lifecycle.yaml).
	Deliverability Deliverability
	// UTM, when set (utm: in lifecycle.yaml), are the utm_source and
	// utm_medium added to the http(s) links of lifecycle.yaml and of the
	// steps, with utm_campaign (the campaign ID) and utm_content (the step's
	// slug) per email.
	UTM *UTM
}

// UTM are the analytics parameters links carry (utm: in lifecycle.yaml).
type UTM struct {
	Source, Medium string
}

// Deliverability is the bounce and complaint policy of lifecycle.yaml.
type Deliverability struct {
	// SoftBounces temporary failures of an address within SoftBounceWindow
	// suppress it.
	SoftBounces      int
	SoftBounceWindow time.Duration
	// A campaign whose complaint rate passes PauseComplaintRate, or whose bounce
	// rate passes PauseBounceRate, over its last PauseWindow sends (at least
	// that many, fewer than twice as many) stops sending until resumed. A rate
	// of 0 is no limit.
	PauseWindow        int
	PauseComplaintRate float64
	PauseBounceRate    float64
}

// DefaultDeliverability is the policy of a lifecycle.yaml without
// deliverability: three temporary failures in 30 days suppress an address;
// a campaign pauses over 0.3% complaints (the most Gmail and Yahoo allow) or
// 5% bounces in its last 1,000 sends.
var DefaultDeliverability = Deliverability{SoftBounces: 3, SoftBounceWindow: 30 * 24 * time.Hour,
	PauseWindow: 1000, PauseComplaintRate: 0.003, PauseBounceRate: 0.05}

// DefaultBackfillGrace is the backfill grace of a lifecycle.yaml that sets none.
const DefaultBackfillGrace = 24 * time.Hour

// Stage is one lifecycle stage.
type Stage struct {
	Name        string
	Description string
	Pos         Pos
}

// HasStage reports whether name is a declared stage.
func (l *Lifecycle) HasStage(name string) bool {
	for _, s := range l.Stages {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Transition is one rule that moves a customer between stages. Exactly one of On,
// After and Inactive is set: an event rule, a time-in-stage rule or an inactivity rule.
type Transition struct {
	Pos Pos
	// From lists the stages the rule applies in; empty means any stage.
	From []string
	To   string
	// On is the event name of an event rule. The name "activity" matches any event
	// listed in Lifecycle.Activity.
	On string
	// Where is an optional condition on an event rule.
	Where *Expr
	// After is the time spent in the stage before a time rule fires.
	After time.Duration
	// Inactive is the time without activity before an inactivity rule fires.
	Inactive time.Duration
}

// AttrType is the declared type of a customer attribute.
type AttrType string

// Attribute types that lifecycle.yaml may declare.
const (
	AttrString AttrType = "string"
	AttrInt    AttrType = "int"
	AttrFloat  AttrType = "float"
	AttrBool   AttrType = "bool"
	AttrTime   AttrType = "time"
)

// Sender is the organisation that sends the emails.
type Sender struct {
	// Name is shown as the From display name and in the footer.
	Name string
	// Address is the postal address every email carries (CAN-SPAM).
	Address string
	// Domains are the domains emails may be sent from: a campaign's from:
	// must be an address of one of them (lower case).
	Domains []string
}

// Campaign is one folder under campaigns/: campaign.md and its steps.
type Campaign struct {
	// ID is the folder name; it is part of every step identity and must stay stable.
	ID   string
	Path string // campaign.md
	Name string
	// Description is the Markdown body of campaign.md.
	Description string
	Trigger     Trigger
	// Audience, when set, must hold for a customer to enrol and at every send.
	Audience *Expr
	Exit     Exit
	// Goal, when set, ends the enrollment as converted.
	Goal    *Goal
	Reentry Reentry
	// SendWindow, when set, limits sends to these days and hours in the customer's timezone.
	SendWindow *Window
	// Topic is the subscription topic customers can opt out of on the preference page.
	Topic string
	// From and ReplyTo, when set (from:, reply_to:), are its emails' From and
	// Reply-To; else the worker's RETAIN_FROM, and no Reply-To.
	From, ReplyTo *mail.Address
	// EventData declares the data of the trigger event its templates use as
	// .Event.Data (event_data:), typed like attributes; only those fields are
	// kept with an enrollment. Nil when undeclared: .Event.Data is then empty.
	EventData map[string]AttrType
	// Steps in file-name order.
	Steps []*Step

	// Broadcast, when set (kind: broadcast), makes the campaign a one-off
	// send to its Audience at Broadcast.SendAt instead of a sequence
	// customers enrol in on a trigger: it has no Trigger and one step.
	Broadcast *Broadcast
	// Holdout is the share of the customers who would enrol that is kept
	// in a control group (holdout:), in basis points (10% is 1000): they
	// are enrolled, get none of its emails, and reach or miss its goal
	// like everyone else. 0 is no holdout.
	Holdout int
}

// IsBroadcast reports whether c is a broadcast (kind: broadcast).
func (c *Campaign) IsBroadcast() bool { return c.Broadcast != nil }

// Broadcast is what makes a campaign a broadcast: when it is sent.
type Broadcast struct {
	SendAt SendAt
}

// SendAt is a broadcast's send_at: an instant, or a local date and time of
// day that each customer gets in their own time zone ("2027-01-12 09:00
// local").
type SendAt struct {
	// Source is send_at as written and Pos where.
	Source string
	Pos    Pos
	// Instant is the moment of an instant send_at; zero when Local.
	Instant time.Time
	// Local is set for a local send_at: Date's wall clock in each customer's
	// zone.
	Local bool
	// Date holds the local date and time of day (in UTC, read as a wall
	// clock) when Local.
	Date time.Time
}

// Earliest is the first moment the broadcast is due for anyone: the instant,
// or the local time in the first time zone to reach it (UTC+14).
func (s SendAt) Earliest() time.Time {
	if !s.Local {
		return s.Instant
	}
	return s.Date.Add(-14 * time.Hour)
}

// Latest is the last moment the broadcast is due for anyone: the instant, or
// the local time in the last time zone to reach it (UTC-12).
func (s SendAt) Latest() time.Time {
	if !s.Local {
		return s.Instant
	}
	return s.Date.Add(12 * time.Hour)
}

// ABVariant is a variant of a step for an A/B test: the file NN-name.X.md
// beside NN-name.md, with its own subject and body, which Split percent of
// the customers get instead of the step's own content (variant "a").
type ABVariant struct {
	// Name is the variant's letter: "b", "c", ….
	Name string
	// Split is the percentage of customers who get this variant (split:),
	// 1–99; SplitPos is where it is set.
	Split    int
	SplitPos Pos
	// Content is the variant's default-locale content and Locales its locale
	// variants (NN-name.X.nl.md), chosen as Step.ContentFor chooses.
	Content *Content
	Locales map[string]*Content
}

// VariantA is the name of a step's own content in an A/B test.
const VariantA = "a"

// Trigger says when a customer enrols: on entering a stage, or on an event.
type Trigger struct {
	Pos   Pos
	Stage string
	Event string
	// Where is an optional condition on an event trigger.
	Where *Expr
}

// Exit says what ends an enrollment early.
type Exit struct {
	Events []string
	// StageLeft ends the enrollment when the customer leaves the trigger stage.
	StageLeft bool
}

// Goal is the conversion a campaign works towards.
type Goal struct {
	Event string
	Where *Expr
	// Within, when set (goal: {within: 7d}), is how long after the
	// enrollment completed its last step the goal still counts. Broadcasts
	// default to DefaultGoalWithin; sequences to 0, which counts the goal
	// only while the customer is in the campaign.
	Within time.Duration
}

// DefaultGoalWithin is the goal window of a broadcast whose goal sets none.
const DefaultGoalWithin = 7 * 24 * time.Hour

// ReentryMode says whether a customer may enrol again.
type ReentryMode int

// Re-entry modes.
const (
	ReentryNever ReentryMode = iota
	ReentryAlways
	ReentryAfter
)

// Reentry is a campaign's re-entry rule: never, always, or after a cool-down.
type Reentry struct {
	Mode  ReentryMode
	After time.Duration
}

// Window is a send window: weekdays and a range of local clock times.
type Window struct {
	// Days[time.Sunday] … Days[time.Saturday].
	Days [7]bool
	// Start and End are local clock times; sends are allowed in [Start, End).
	Start, End Clock
}

// Clock is a time of day in minutes after midnight.
type Clock int

// Step is one email of a campaign: a Markdown file and its locale variants.
type Step struct {
	// ID is the step identity, "campaign/slug": stable across reordering, and
	// across a rename when the step pins its slug with id:.
	ID string
	// Slug is the identity within the campaign: the front matter's id: when
	// set, else the file name without order prefix, locale and extension.
	// Enrollments, the ledger, Message-IDs and links carry it.
	Slug string
	// IDPos is where id: is set; zero when the slug comes from the file name.
	IDPos    Pos
	Campaign *Campaign
	// Order is the numeric file-name prefix.
	Order int
	// Delay is the wait after the previous step (after enrolment for the first).
	Delay time.Duration
	// At, when set, moves the send to this local time of day on or after the due moment.
	At *Clock
	// TimingPos is where delay: (else at:) is set; zero when neither is.
	TimingPos Pos
	OnlyIf    *Expr
	SkipIf    *Expr
	// Links are the step's own links (links: in its front matter), name ->
	// URL, used as .Links.name beside lifecycle.yaml's; its locale variants
	// share them.
	Links map[string]string
	// Content is the default-locale content.
	Content *Content
	// Variants holds locale variants by locale ("nl", "pt-BR").
	Variants map[string]*Content
	// AB are the step's A/B variants (NN-name.X.md), sorted by name; a
	// customer not assigned to one gets the step's own content, variant
	// "a" (VariantA).
	AB []*ABVariant
}

// ABVariant returns the step's A/B variant named name, or nil (for "a", or a
// variant the step no longer has).
func (s *Step) ABVariant(name string) *ABVariant {
	for _, v := range s.AB {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// ContentForVariant returns the content for A/B variant name (VariantA or
// "" for the step's own) and a customer locale, choosing the locale as
// ContentFor does. A variant the step no longer has gives the step's own
// content.
func (s *Step) ContentForVariant(name, locale string) *Content {
	v := s.ABVariant(name)
	if v == nil {
		return s.ContentFor(locale)
	}
	return contentFor(v.Content, v.Locales, locale)
}

// ContentFor returns the content for a customer locale: an exact variant ("pt-BR"),
// then its language ("pt"), then the default.
func (s *Step) ContentFor(locale string) *Content {
	return contentFor(s.Content, s.Variants, locale)
}

func contentFor(def *Content, byLocale map[string]*Content, locale string) *Content {
	if c, ok := byLocale[locale]; ok {
		return c
	}
	for i := 0; i < len(locale); i++ {
		if locale[i] == '-' || locale[i] == '_' {
			if c, ok := byLocale[locale[:i]]; ok {
				return c
			}
			break
		}
	}
	return def
}

// Content is what one file of a step says: headers as template sources and the body.
type Content struct {
	// Path is the file the content comes from.
	Path string
	// Locale is empty for the default content.
	Locale       string
	Subject      string
	SubjectPos   Pos
	Preheader    string
	PreheaderPos Pos
	// Layout names templates/<layout>.html and .txt; default "default".
	Layout    string
	LayoutPos Pos
	// Body is the Markdown after the front matter; BodyLine is the file line it starts on.
	Body     string
	BodyLine int
	// FrontMatterInvalid is set when the front matter is not valid YAML (a
	// problem says so): its keys, the subject among them, are unknown, not empty.
	FrontMatterInvalid bool
}

// Expr is a compiled, type-checked condition.
type Expr struct {
	Source  string
	Pos     Pos
	Program *vm.Program
}

// AppliesIn reports whether the transition applies to a customer in stage.
func (t *Transition) AppliesIn(stage string) bool {
	return len(t.From) == 0 || slices.Contains(t.From, stage)
}
