package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/store"
)

// The pages links in emails lead to. Every link carries a token signed by
// package link; a token that does not verify, or is of another kind than its
// route, gets a 400 page and changes nothing.
//
//	GET  /u/{token}    confirmation page; never unsubscribes (link scanners GET)
//	POST /u/{token}    List-Unsubscribe=One-Click (RFC 8058): unsubscribes at once, 200
//	GET  /p/{token}    preference page: topics of the loaded campaigns, unsubscribe from all
//	POST /p/{token}    saves the preferences, 200
//	GET  /nps/{token}  confirmation page: the token's score (never ?score=) and a button per
//	                   score; never records (link scanners GET); 410 once expired
//	POST /nps/{token}  records the answer (action=answer), then offers a comment; or the comment
//	GET  /c/{token}    records the click and redirects (302) to the URL signed in the token
//
// Subscription changes are written with store.Update, so the worker's next
// Decide sees them; each records a consent note (an "unsubscribed" or
// "preferences_changed" event: when, how, what), which the store keeps in the
// customer's recent events and, never trimmed, in their consent history.
// NPS answers and clicks are events for the lifecycle engine, queued like any
// other (queue.Client.EnqueueEvent) under deterministic IDs.

// Event names the link pages produce.
const (
	eventUnsubscribed       = "unsubscribed"
	eventPreferencesChanged = "preferences_changed"
	eventNPSSubmitted       = "nps_submitted"
	eventLinkClicked        = "link_clicked"
)

// maxNPSComment is the longest NPS comment kept, in characters; longer ones are cut.
const maxNPSComment = 2000

//go:embed templates/links/*.html
var linkTemplateFS embed.FS

// linkPages are the pages of links, each parsed with the layout.
var linkPages = func() map[string]*template.Template {
	pages := make(map[string]*template.Template)
	for _, name := range []string{"unsubscribe", "preferences", "nps", "problem"} {
		pages[name] = template.Must(template.ParseFS(linkTemplateFS, "templates/links/layout.html", "templates/links/"+name+".html"))
	}
	return pages
}()

// linkPage is what every link page shows; each page uses the fields it needs.
type linkPage struct {
	Sender campaign.Sender
	Title  string
	// Message explains a problem page.
	Message string
	// PreferencesURL links the unsubscribe page to the preference page.
	PreferencesURL string

	// Topic is the topic a topic unsubscribe link concerns; empty for all.
	Topic string
	// Done: the unsubscribe happened; Already: it had happened before.
	Done, Already bool

	Topics       []linkTopic
	Unsubscribed bool
	Saved        bool

	// Score is the NPS score shown. Confirm asks to confirm it (or pick one
	// of Scores) with a form carrying Nonce; else the answer was recorded
	// and a comment is offered, or Commented.
	Score      int
	Confirm    bool
	Scores     []int
	Nonce      string
	Commented  bool
	MaxComment int
}

// linkTopic is one subscription topic on the preference page.
type linkTopic struct {
	Name string
	// Campaigns are the names of the campaigns sent under the topic.
	Campaigns  []string
	Subscribed bool
}

func (s *Server) linkRoutes() {
	s.mux.HandleFunc("GET /u/{token}", s.unsubscribePage)
	s.mux.HandleFunc("POST /u/{token}", s.unsubscribeOneClick)
	s.mux.HandleFunc("GET /p/{token}", s.preferencesPage)
	s.mux.HandleFunc("POST /p/{token}", s.savePreferences)
	s.mux.HandleFunc("GET /nps/{token}", s.npsConfirm)
	s.mux.HandleFunc("POST /nps/{token}", s.npsPost)
	s.mux.HandleFunc("GET /c/{token}", s.clickRedirect)
}

// showLinkPage writes a page. The headers keep the token out of Referer
// headers, the pages out of caches and frames, and scripts out altogether.
func (s *Server) showLinkPage(w http.ResponseWriter, status int, name string, p linkPage) {
	p.Sender = s.d.Sender
	var b bytes.Buffer
	if err := linkPages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.cfg.Log.Error("link page", "page", name, "error", err)
		http.Error(w, "Something went wrong on our side. Please try again later.", http.StatusInternalServerError)
		return
	}
	linkHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func linkHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

func (s *Server) linkProblem(w http.ResponseWriter, status int, title, msg string) {
	s.showLinkPage(w, status, "problem", linkPage{Title: title, Message: msg})
}

func (s *Server) linkFailed(w http.ResponseWriter, what string, err error) {
	s.cfg.Log.Error(what, "error", err)
	s.linkProblem(w, http.StatusInternalServerError, "Something went wrong",
		"We could not do this right now. Please try the link again in a few minutes.")
}

// linkClaims verifies the request's token as a link of kind. When it is not one
// it answers (400, or 410 for an expired link) and returns false.
func (s *Server) linkClaims(w http.ResponseWriter, r *http.Request, kind string) (link.Claims, bool) {
	c, err := s.d.Signer.Verify(r.PathValue("token"), s.cfg.Now())
	switch {
	case errors.Is(err, link.ErrExpired) && c.Kind == kind:
		s.linkProblem(w, http.StatusGone, "This link has expired",
			"This link was only valid for a while, and that while is over. Thank you all the same!")
		return c, false
	case err != nil || c.Kind != kind:
		s.linkProblem(w, http.StatusBadRequest, "This link is not valid",
			"The link may have been cut off or changed. Please use the link from the email exactly as it is.")
		return c, false
	}
	return c, true
}

// parseLinkForm reads a posted form (urlencoded or multipart, as RFC 8058
// allows) of at most MaxBody bytes; never the query string.
func (s *Server) parseLinkForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if err := r.ParseMultipartForm(s.cfg.MaxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		s.linkProblem(w, http.StatusBadRequest, "Something was wrong with the form", "Please go back and try again.")
		return false
	}
	return true
}

// keepSchedule is the part of a store.Change that leaves the customer in the
// wake and due indexes where the engine wants them: a zero Wake or Due would
// take them out.
func (s *Server) keepSchedule(c *lifecycle.Customer, ev *lifecycle.Event) *store.Change {
	return &store.Change{Customer: c, Event: ev, Wake: s.d.Engine.NextWake(c), Due: s.d.Engine.NextDue(c)}
}

func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.linkClaims(w, r, link.Unsubscribe)
	if !ok {
		return
	}
	p := linkPage{Title: "Unsubscribe", Topic: cl.Topic, PreferencesURL: s.d.Signer.PreferencesURL(cl.Customer)}
	// Reading only: a GET never unsubscribes, since link scanners follow links.
	c, err := s.d.Store.Customer(r.Context(), cl.Customer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.Done, p.Already, p.PreferencesURL = true, true, ""
	case err != nil:
		s.linkFailed(w, "unsubscribe page", err)
		return
	case isUnsubscribedFrom(c, cl.Topic):
		p.Done, p.Already = true, true
	}
	s.showLinkPage(w, http.StatusOK, "unsubscribe", p)
}

func isUnsubscribedFrom(c *lifecycle.Customer, topic string) bool {
	return c.Unsubscribed || (topic != "" && slices.Contains(c.OptedOut, topic))
}

// unsubscribeOneClick is the RFC 8058 endpoint: a mailbox provider (or the
// confirmation page's form) posts List-Unsubscribe=One-Click and the customer is
// unsubscribed before the answer is sent. A customer that no longer exists has
// nothing left to unsubscribe from: that is a success too.
func (s *Server) unsubscribeOneClick(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.linkClaims(w, r, link.Unsubscribe)
	if !ok || !s.parseLinkForm(w, r) {
		return
	}
	if r.PostForm.Get("List-Unsubscribe") != "One-Click" {
		s.linkProblem(w, http.StatusBadRequest, "Nothing was changed",
			"This request did not ask to unsubscribe. Please use the button on the unsubscribe page.")
		return
	}
	how := "one-click (RFC 8058 List-Unsubscribe-Post)"
	if r.PostForm.Get("via") == "page" {
		how = "unsubscribe page"
	}
	now := s.cfg.Now()
	var already bool
	err := s.d.Store.Update(r.Context(), cl.Customer, "", func(c *lifecycle.Customer) (*store.Change, error) {
		already = true
		if c == nil || isUnsubscribedFrom(c, cl.Topic) {
			return nil, nil
		}
		already = false
		data := map[string]any{"how": how}
		if cl.Topic == "" {
			c.Unsubscribed = true
		} else {
			c.OptedOut = append(c.OptedOut, cl.Topic)
			slices.Sort(c.OptedOut)
			data["topic"] = cl.Topic
		}
		return s.keepSchedule(c, &lifecycle.Event{Name: eventUnsubscribed, At: now, Data: data}), nil
	})
	if err != nil {
		s.linkFailed(w, "unsubscribe", err)
		return
	}
	if !already {
		s.cfg.Log.Info("customer unsubscribed", "customer", cl.Customer, "topic", cl.Topic, "how", how)
	}
	s.showLinkPage(w, http.StatusOK, "unsubscribe", linkPage{Title: "Unsubscribed", Topic: cl.Topic, Done: true, Already: already,
		PreferencesURL: s.d.Signer.PreferencesURL(cl.Customer)})
}

// linkTopics lists the topics of the loaded campaigns, sorted, each with the
// names of its campaigns, marked subscribed unless c opted out of it.
func (s *Server) linkTopics(c *lifecycle.Customer) []linkTopic {
	byName := make(map[string]*linkTopic)
	var topics []*linkTopic
	if s.d.Engine != nil {
		for _, camp := range s.d.Engine.Set().Campaigns {
			if camp.Topic == "" {
				continue
			}
			t := byName[camp.Topic]
			if t == nil {
				t = &linkTopic{Name: camp.Topic, Subscribed: !slices.Contains(c.OptedOut, camp.Topic)}
				byName[camp.Topic] = t
				topics = append(topics, t)
			}
			t.Campaigns = append(t.Campaigns, linkOr(camp.Name, camp.ID))
		}
	}
	slices.SortFunc(topics, func(a, b *linkTopic) int { return strings.Compare(a.Name, b.Name) })
	out := make([]linkTopic, len(topics))
	for i, t := range topics {
		out[i] = *t
	}
	return out
}

func linkOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (s *Server) preferencesPage(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.linkClaims(w, r, link.Preferences)
	if !ok {
		return
	}
	c, err := s.d.Store.Customer(r.Context(), cl.Customer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.linkGone(w)
		return
	case err != nil:
		s.linkFailed(w, "preference page", err)
		return
	}
	s.showLinkPage(w, http.StatusOK, "preferences", linkPage{Title: "Email preferences", Topics: s.linkTopics(c), Unsubscribed: c.Unsubscribed})
}

func (s *Server) linkGone(w http.ResponseWriter) {
	s.linkProblem(w, http.StatusNotFound, "We no longer have this address",
		"We hold no data for this link any more, so we send it no emails.")
}

// savePreferences writes the posted choice. "Save" subscribes the customer to
// exactly the checked topics of the loaded campaigns and lifts an unsubscribe
// from all (the customer asked for these emails, through their own signed
// link); opt-outs of topics no loaded campaign uses are kept. "Unsubscribe from
// all" sets Unsubscribed and leaves the topics as they were.
func (s *Server) savePreferences(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.linkClaims(w, r, link.Preferences)
	if !ok || !s.parseLinkForm(w, r) {
		return
	}
	all := r.PostForm.Get("action") == "unsubscribe"
	wanted := r.PostForm["topic"]
	now := s.cfg.Now()
	var saved *lifecycle.Customer
	err := s.d.Store.Update(r.Context(), cl.Customer, "", func(c *lifecycle.Customer) (*store.Change, error) {
		if c == nil {
			return nil, store.ErrNotFound
		}
		saved = c
		before := slices.Clone(c.OptedOut)
		wasUnsubscribed := c.Unsubscribed
		name := eventPreferencesChanged
		if all {
			c.Unsubscribed, name = true, eventUnsubscribed
		} else {
			var out []string
			known := make(map[string]bool)
			for _, t := range s.linkTopics(c) {
				known[t.Name] = true
				if !slices.Contains(wanted, t.Name) {
					out = append(out, t.Name)
				}
			}
			for _, t := range c.OptedOut {
				if !known[t] {
					out = append(out, t)
				}
			}
			slices.Sort(out)
			c.OptedOut = slices.Compact(out)
			c.Unsubscribed = false
		}
		if c.Unsubscribed == wasUnsubscribed && slices.Equal(c.OptedOut, before) {
			return nil, nil
		}
		ev := &lifecycle.Event{Name: name, At: now, Data: map[string]any{
			"how": "preference page", "unsubscribed": c.Unsubscribed, "opted_out": slices.Clone(c.OptedOut)}}
		return s.keepSchedule(c, ev), nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.linkGone(w)
		return
	case err != nil:
		s.linkFailed(w, "save preferences", err)
		return
	}
	s.cfg.Log.Info("preferences saved", "customer", cl.Customer, "unsubscribed", saved.Unsubscribed, "opted_out", strings.Join(saved.OptedOut, ","))
	s.showLinkPage(w, http.StatusOK, "preferences", linkPage{Title: "Email preferences", Topics: s.linkTopics(saved),
		Unsubscribed: saved.Unsubscribed, Saved: true})
}

// npsCategory is the NPS group of a score: promoter (9–10), passive (7–8) or
// detractor (0–6).
func npsCategory(score int) string {
	switch {
	case score >= 9:
		return "promoter"
	case score >= 7:
		return "passive"
	default:
		return "detractor"
	}
}

// npsEvent is the nps_submitted event of an answer to the survey email sent by
// enrollment n of the link's campaign; the report counts one answer per
// customer and survey email, the latest (package report). Every answer posted
// is an event, so the history shows a changed mind and the campaign's goal is
// reached by the first; its ID names the confirmation page it was posted from
// (nonce), so posting that page twice adds nothing. A comment is an
// nps_submitted event of its own, repeating the score with the comment, one per
// distinct comment text (events are never rewritten); the report does not
// count it.
func npsEvent(cl link.Claims, n, score int, nonce, comment string, at time.Time) lifecycle.Event {
	id := "nps:" + cl.Campaign + ":" + strconv.Itoa(n) + ":" + strconv.Itoa(score)
	data := map[string]any{"score": score, "category": npsCategory(score), "campaign": cl.Campaign, "enrollment": n}
	if comment != "" {
		sum := sha256.Sum256([]byte(comment))
		id += ":comment:" + hex.EncodeToString(sum[:8])
		data["comment"] = comment
	} else {
		id += ":" + nonce
	}
	return lifecycle.Event{ID: id, Name: eventNPSSubmitted, At: at, Data: data}
}

// npsClaims is linkClaims for an NPS link, whose score must be 0–10.
func (s *Server) npsClaims(w http.ResponseWriter, r *http.Request) (link.Claims, bool) {
	cl, ok := s.linkClaims(w, r, link.NPS)
	if ok && (cl.Score < 0 || cl.Score > 10 || cl.Campaign == "") {
		s.linkProblem(w, http.StatusBadRequest, "This link is not valid", "Please use the link from the email exactly as it is.")
		return cl, false
	}
	return cl, ok
}

// npsScores are the buttons of the confirmation page.
var npsScores = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

// npsNonce names one confirmation page; isNPSNonce checks a posted one.
func npsNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func isNPSNonce(v string) bool {
	if v == "" || len(v) > 32 {
		return false
	}
	_, err := hex.DecodeString(v)
	return err == nil && strings.ToLower(v) == v
}

// npsConfirm shows the score signed into the link, with a form that posts it
// and a button for every other score. It records nothing: link scanners
// (Safe Links and the like) GET every score link of an email. The ?score= the
// link also shows is for people reading it and is never read.
func (s *Server) npsConfirm(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.npsClaims(w, r)
	if !ok {
		return
	}
	s.showLinkPage(w, http.StatusOK, "nps", linkPage{Title: "Your answer", Confirm: true, Score: cl.Score,
		Scores: npsScores, Nonce: npsNonce()})
}

// npsPost records what the NPS pages post: an answer from the confirmation
// page (action=answer: the chosen button's score, else the link's), or else a
// comment on the answer. Both belong to the survey email the link came in:
// the enrollment it carries, or the customer's latest in its campaign.
func (s *Server) npsPost(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.npsClaims(w, r)
	if !ok || !s.parseLinkForm(w, r) {
		return
	}
	score := cl.Score
	if v, err := strconv.Atoi(r.PostForm.Get("score")); err == nil && v >= 0 && v <= 10 {
		score = v
	}
	answer := r.PostForm.Get("action") == "answer"
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	if utf8.RuneCountInString(comment) > maxNPSComment {
		comment = string([]rune(comment)[:maxNPSComment])
	}
	if !answer && comment == "" {
		s.showLinkPage(w, http.StatusOK, "nps", linkPage{Title: "Thank you", Score: score, Commented: true})
		return
	}
	c, err := s.d.Store.Customer(r.Context(), cl.Customer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.linkGone(w)
		return
	case err != nil:
		s.linkFailed(w, "record NPS answer", err)
		return
	}
	n := cl.Enrollment
	if e := c.Enrollments[cl.Campaign]; n <= 0 && e != nil {
		n = e.Number
	}
	now := s.cfg.Now()
	if !answer {
		if err := s.d.Queue.EnqueueEvent(r.Context(), cl.Customer, npsEvent(cl, n, score, "", comment, now)); err != nil {
			s.linkFailed(w, "record NPS comment", err)
			return
		}
		s.showLinkPage(w, http.StatusOK, "nps", linkPage{Title: "Thank you", Score: score, Commented: true})
		return
	}
	nonce := r.PostForm.Get("answer")
	if !isNPSNonce(nonce) {
		nonce = strconv.FormatInt(now.Unix(), 10) // a post made without the page
	}
	if err := s.d.Queue.EnqueueEvent(r.Context(), cl.Customer, npsEvent(cl, n, score, nonce, "", now)); err != nil {
		s.linkFailed(w, "record NPS answer", err)
		return
	}
	s.cfg.Log.Info("NPS answer", "customer", cl.Customer, "campaign", cl.Campaign, "enrollment", n, "score", score)
	s.showLinkPage(w, http.StatusOK, "nps", linkPage{Title: "Thanks for your answer", Score: score, MaxComment: maxNPSComment})
}

// clickRedirect records a tracked click and redirects to the URL signed into
// the link, and only there: the request's query and path beyond the token are
// never read. One link_clicked event per customer, step and URL (repeated clicks
// of the same link add nothing). A failure to record still redirects: the
// customer's click matters more than the count.
func (s *Server) clickRedirect(w http.ResponseWriter, r *http.Request) {
	cl, ok := s.linkClaims(w, r, link.Click)
	if !ok {
		return
	}
	if !link.Trackable(cl.URL) {
		s.linkProblem(w, http.StatusBadRequest, "This link is not valid", "Please use the link from the email exactly as it is.")
		return
	}
	if r.Method != http.MethodHead {
		sum := sha256.Sum256([]byte(cl.Step + "\x00" + cl.URL))
		ev := lifecycle.Event{ID: "click:" + hex.EncodeToString(sum[:12]), Name: eventLinkClicked, At: s.cfg.Now(),
			Data: map[string]any{"url": cl.URL, "campaign": cl.Campaign, "step": cl.Step}}
		// The redirect must not wait long on a slow Redis.
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		err := s.d.Queue.EnqueueEvent(ctx, cl.Customer, ev)
		cancel()
		if err != nil {
			s.cfg.Log.Error("record click", "customer", cl.Customer, "step", cl.Step, "error", err)
		}
	}
	linkHeaders(w)
	http.Redirect(w, r, cl.URL, http.StatusFound)
}
