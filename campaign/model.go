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
}

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
}

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
	At     *Clock
	OnlyIf *Expr
	SkipIf *Expr
	// Links are the step's own links (links: in its front matter), name ->
	// URL, used as .Links.name beside lifecycle.yaml's; its locale variants
	// share them.
	Links map[string]string
	// Content is the default-locale content.
	Content *Content
	// Variants holds locale variants by locale ("nl", "pt-BR").
	Variants map[string]*Content
}

// ContentFor returns the content for a customer locale: an exact variant ("pt-BR"),
// then its language ("pt"), then the default.
func (s *Step) ContentFor(locale string) *Content {
	if c, ok := s.Variants[locale]; ok {
		return c
	}
	for i := 0; i < len(locale); i++ {
		if locale[i] == '-' || locale[i] == '_' {
			if c, ok := s.Variants[locale[:i]]; ok {
				return c
			}
			break
		}
	}
	return s.Content
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
