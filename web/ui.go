package web

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/render"
	"github.com/retainmail/retain/store"
)

// The campaign preview pages: plain server-rendered HTML for marketers and
// operators, behind HTTP Basic auth with the API token as the password.
//
//	GET /                                 → /campaigns
//	GET /campaigns                        every campaign, and the lint problems
//	GET /campaigns/{campaign}             a campaign and its steps
//	GET /campaigns/{campaign}/{step}      a step rendered: headers, HTML part, text part
//	GET /campaigns/{campaign}/{step}/html the HTML part alone, for the page's iframe
//	POST /campaigns/{campaign}/{step}/send-test  sends the step as a test email (sendtest.go)
//
// A step renders for the sample customer (render.SampleData), or for a stored
// customer with ?customer=ID; ?locale=nl picks a locale variant.
func (s *Server) uiRoutes() {
	s.mux.Handle("GET /{$}", http.RedirectHandler("/campaigns", http.StatusFound))
	s.mux.Handle("GET /campaigns", s.requireBasic(http.HandlerFunc(s.campaignsPage)))
	s.mux.Handle("GET /campaigns/{campaign}", s.requireBasic(http.HandlerFunc(s.campaignPage)))
	s.mux.Handle("GET /campaigns/{campaign}/{step}", s.requireBasic(http.HandlerFunc(s.stepPage)))
	s.mux.Handle("GET /campaigns/{campaign}/{step}/html", s.requireBasic(http.HandlerFunc(s.stepHTML)))
	s.mux.Handle("POST /campaigns/{campaign}/{step}/send-test", s.requireBasic(http.HandlerFunc(s.sendTest)))
	s.mux.HandleFunc("GET /preview/unsubscribe", s.previewLink)
	s.mux.HandleFunc("GET /preview/preferences", s.previewLink)
	s.mux.HandleFunc("GET /preview/nps/{score}", s.previewLink)
}

// previewLinks are the sample customer's links in a preview. A signed link
// would need a customer, and clicking one would act on it; these lead to
// previewLink, which says where the link leads in a sent email and changes
// nothing.
func previewLinks(base string, fixed map[string]string) render.Links {
	return render.NewLinks(base+"/preview/unsubscribe", base+"/preview/preferences",
		func(score int) string { return fmt.Sprintf("%s/preview/nps/%d", base, score) }, fixed)
}

// previewLink answers a click on a preview's unsubscribe, preferences or NPS
// link (previewLinks): 200, a page saying what the link does in a sent email.
// It needs no credentials, as a click in the preview's sandboxed iframe sends
// none, and shows nothing but fixed text; the preview may frame it.
func (s *Server) previewLink(w http.ResponseWriter, r *http.Request) {
	var p linkPage
	switch {
	case r.URL.Path == "/preview/unsubscribe":
		p.Title = "Unsubscribe link (preview)"
		p.Message = "In a sent email, this link opens the customer's unsubscribe page: one click unsubscribes them from the campaign's topic (or from everything), and email clients offer the same as their own unsubscribe button. This is a preview: nothing was changed."
	case r.URL.Path == "/preview/preferences":
		p.Title = "Email preferences link (preview)"
		p.Message = "In a sent email, this link opens the customer's preference page: a switch per topic, and one to unsubscribe from everything. This is a preview: nothing was changed."
	default:
		score, err := strconv.Atoi(r.PathValue("score"))
		if err != nil || score < 0 || score > 10 {
			http.NotFound(w, r)
			return
		}
		p.Title = fmt.Sprintf("NPS score %d (preview)", score)
		p.Message = fmt.Sprintf("In a sent email, this link asks the customer to confirm a score of %d, records it, and offers a box for a comment. This is a preview: nothing was recorded.", score)
	}
	p.Sender = s.d.Sender
	var b bytes.Buffer
	if err := linkPages["problem"].ExecuteTemplate(&b, "layout", p); err != nil {
		s.cfg.Log.Error("preview link page", "error", err)
		http.Error(w, "the preview page could not be rendered", http.StatusInternalServerError)
		return
	}
	linkHeaders(w)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}

// requireBasic lets a request through when its HTTP Basic password (any user
// name) is the API token, compared in constant time: browsers cannot send a bearer
// token, but they remember Basic credentials. Because they also send them with
// requests other sites make, unsafe cross-origin requests are refused.
func (s *Server) requireBasic(next http.Handler) http.Handler {
	return s.guard(next, false)
}

// requireTokenOrBasic accepts the API token as a bearer token or as a Basic
// password: Prometheus can send either.
func (s *Server) requireTokenOrBasic(next http.Handler) http.Handler {
	return s.guard(next, true)
}

func (s *Server) guard(next http.Handler, bearer bool) http.Handler {
	want := []byte(s.cfg.APIToken)
	next = http.NewCrossOriginProtection().Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, got, ok := r.BasicAuth()
		if !ok && bearer {
			got, ok = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="retain", charset="UTF-8"`)
			http.Error(w, "sign in with any user name and the API token ($RETAIN_API_TOKEN) as the password", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

//go:embed templates/ui/*.html
var uiFiles embed.FS

// uiPages are the page templates, each parsed with layout.html.
var uiPages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"delay":   formatDelay,
		"when":    formatWhen,
		"percent": func(bp int) string { return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%" },
		"inc":     func(i int) int { return i + 1 },
		"stepURL": stepURL,
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(uiFiles, "templates/ui/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"campaigns.html", "campaign.html", "step.html", "error.html", "reports.html", "failed.html", "people.html", "person.html"} {
		pages[name] = template.Must(template.Must(layout.Clone()).ParseFS(uiFiles, "templates/ui/"+name))
	}
	return pages
}()

// page is what layout.html shows around every page.
type page struct {
	Title string
	// Crumbs lead from the campaign list to this page; the last is the page itself.
	Crumbs []crumb
	// Problems are the lint problems of the loaded campaigns.
	Problems campaign.Problems
	// Note replaces the default advice under the problems (Deps.ProblemsNote).
	Note string
}

type crumb struct{ Name, URL string }

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := uiPages[name].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		s.cfg.Log.Error("ui: render page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	// Only the page's own stylesheet and frames run here; the emails' HTML comes
	// in a sandboxed iframe from the same origin.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string, crumbs ...crumb) {
	s.render(w, status, "error.html", struct {
		page
		Status  int
		Message string
	}{page{Title: http.StatusText(status), Crumbs: crumbs, Problems: s.d.Problems, Note: s.d.ProblemsNote}, status, msg})
}

// set is the loaded campaign set, or nil when the campaigns could not be loaded.
func (s *Server) set() *campaign.Set {
	if s.d.Engine == nil {
		return nil
	}
	return s.d.Engine.Set()
}

// problemsByPath groups the lint problems under the file they are in.
func problemsIn(ps campaign.Problems, dir string) campaign.Problems {
	var out campaign.Problems
	for _, p := range ps {
		if dir == "" || strings.HasPrefix(p.Path, dir) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) campaignsPage(w http.ResponseWriter, r *http.Request) {
	data := struct {
		page
		Set *campaign.Set
		// Paused are the campaigns paused (auto-pause, retain campaign
		// pause) by ID; PausedError says why they could not be read.
		Paused      map[string]store.Pause
		PausedError string
	}{page: page{Title: "Campaigns", Problems: s.d.Problems, Note: s.d.ProblemsNote}, Set: s.set()}
	if s.d.Store != nil {
		var err error
		if data.Paused, err = s.d.Store.Paused(r.Context()); err != nil {
			s.cfg.Log.Warn("campaigns page: paused campaigns not read", "error", err)
			data.PausedError = "Which campaigns are paused could not be read from Redis."
		}
	}
	s.render(w, http.StatusOK, "campaigns.html", data)
}

func campaignURL(c *campaign.Campaign) string { return "/campaigns/" + url.PathEscape(c.ID) }

func stepURL(st *campaign.Step) string {
	return campaignURL(st.Campaign) + "/" + url.PathEscape(st.Slug)
}

// lookup finds the campaign and, when slug is not empty, the step a request names.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*campaign.Campaign, *campaign.Step, bool) {
	set := s.set()
	if set == nil {
		s.errorPage(w, http.StatusServiceUnavailable, "The campaigns could not be loaded: fix the problems above and restart retain web.")
		return nil, nil, false
	}
	c := set.Campaign(r.PathValue("campaign"))
	if c == nil {
		s.errorPage(w, http.StatusNotFound, fmt.Sprintf("There is no campaign %q.", r.PathValue("campaign")))
		return nil, nil, false
	}
	slug := r.PathValue("step")
	if slug == "" {
		return c, nil, true
	}
	for _, st := range c.Steps {
		if st.Slug == slug {
			return c, st, true
		}
	}
	s.errorPage(w, http.StatusNotFound, fmt.Sprintf("Campaign %s has no step %q.", c.ID, slug), crumb{c.Name, campaignURL(c)})
	return nil, nil, false
}

func (s *Server) campaignPage(w http.ResponseWriter, r *http.Request) {
	c, _, ok := s.lookup(w, r)
	if !ok {
		return
	}
	data := struct {
		page
		Campaign *campaign.Campaign
	}{page{Title: c.Name, Crumbs: []crumb{{c.Name, campaignURL(c)}}, Problems: problemsIn(s.d.Problems, dirOf(c.Path)), Note: s.d.ProblemsNote}, c}
	s.render(w, http.StatusOK, "campaign.html", data)
}

func dirOf(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[:i+1]
	}
	return ""
}

// preview is one step rendered for one customer.
type preview struct {
	Content  *campaign.Content
	Customer render.Customer
	// CustomerID is the ?customer= asked for; empty for the sample customer.
	CustomerID string
	// Locale is the ?locale= asked for; empty for the customer's own.
	Locale string
	// ABVariant is the A/B variant shown ("a", "b", …), from ?variant=, else
	// the one a stored customer was given (or would be); empty for a step
	// without variants, or the sample customer's default (the step's own).
	ABVariant string
	Email     *render.Email
	// Err says why the step could not be rendered; Email is nil then.
	Err string
	// Status is the HTTP status of the page.
	Status int
}

// query is the preview's query string, for the iframe and the variant links.
func (p *preview) query(locale string) string {
	return p.queryFor(locale, p.ABVariant)
}

// queryFor is query with another A/B variant.
func (p *preview) queryFor(locale, variant string) string {
	v := url.Values{}
	if p.CustomerID != "" {
		v.Set("customer", p.CustomerID)
	}
	if locale != "" {
		v.Set("locale", locale)
	}
	if variant != "" {
		v.Set("variant", variant)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// renderStep renders st for the customer and locale the request asks for.
func (s *Server) renderStep(r *http.Request, st *campaign.Step) *preview {
	return s.renderStepFor(r, st, false)
}

// renderStepFor is renderStep; test is true for a test email, whose links
// stay the preview's (they change no one) even for a stored customer.
func (s *Server) renderStepFor(r *http.Request, st *campaign.Step, test bool) *preview {
	set := s.set()
	p := &preview{
		CustomerID: strings.TrimSpace(r.URL.Query().Get("customer")),
		Locale:     r.URL.Query().Get("locale"),
		ABVariant:  r.URL.Query().Get("variant"),
		Content:    st.Content,
		Status:     http.StatusOK,
	}
	if p.ABVariant != campaign.VariantA && st.ABVariant(p.ABVariant) == nil {
		p.ABVariant = ""
	}
	data := render.SampleData(set, baseURL(r))
	data.Event = render.SampleEvent(st.Campaign)
	if set.Lifecycle != nil {
		data.Links = previewLinks(baseURL(r), set.Lifecycle.Links)
	}
	if p.CustomerID != "" {
		if s.d.Store == nil {
			p.Err, p.Status = "No customer store: retain web was started without Redis.", http.StatusServiceUnavailable
			return p
		}
		c, err := s.d.Store.Customer(r.Context(), p.CustomerID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			p.Err, p.Status = fmt.Sprintf("There is no customer with ID %q.", p.CustomerID), http.StatusNotFound
			return p
		case err != nil:
			s.cfg.Log.Error("ui: read customer", "customer", p.CustomerID, "error", err)
			p.Err, p.Status = "The customer could not be read: "+err.Error(), http.StatusServiceUnavailable
			return p
		}
		links := data.Links
		if s.d.Signer != nil && !test {
			sg, camp, now := s.d.Signer, st.Campaign.ID, s.cfg.Now()
			links = render.NewLinks(sg.UnsubscribeURL(c.ID, ""), sg.PreferencesURL(c.ID),
				func(score int) string { return sg.NPSURL(c.ID, camp, score, now, 24*time.Hour) }, set.Lifecycle.Links)
		}
		// The customer's email as the worker renders it; retain web does not
		// know the From address, so the sample's stands in.
		data = render.NewData(s.d.Engine, c, links, data.Sender.Email)
		data.Event = render.EventOf(c, st.Campaign)
		if p.ABVariant == "" && len(st.AB) > 0 {
			// The variant the worker sends this customer: the one recorded,
			// else the one they would be given.
			p.ABVariant = lifecycle.AssignVariant(c.ID, st)
			if enr := c.Enrollments[st.Campaign.ID]; enr != nil && enr.AB[st.Slug] != "" {
				p.ABVariant = enr.AB[st.Slug]
			}
		}
		p.Content = st.ContentForVariant(p.ABVariant, data.Customer.Locale)
	} else {
		p.Content = st.ContentForVariant(p.ABVariant, "")
		if s.d.Sender.Name != "" {
			data.Sender.Name, data.Sender.Address = s.d.Sender.Name, s.d.Sender.Address
		}
	}
	locales := st.Variants
	if v := st.ABVariant(p.ABVariant); v != nil {
		locales = v.Locales
	}
	if v, ok := locales[p.Locale]; ok {
		p.Content = v
		data.Customer.Locale = p.Locale
	} else {
		p.Locale = ""
	}
	p.Customer = data.Customer
	if s.d.Renderer == nil {
		p.Err, p.Status = "The campaigns do not lint, so no step can be rendered: fix the problems above.", http.StatusServiceUnavailable
		return p
	}
	e, err := s.d.Renderer.RenderContent(p.Content, data)
	if err != nil {
		p.Err, p.Status = err.Error(), http.StatusUnprocessableEntity
		return p
	}
	p.Email = e
	return p
}

// baseURL is where the request came in, for the sample customer's links.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) stepPage(w http.ResponseWriter, r *http.Request) {
	s.showStep(w, r, "", false)
}

// showStep serves the step page with a notice above the preview (a test
// email sent, or why not), failed marking it an error.
func (s *Server) showStep(w http.ResponseWriter, r *http.Request, notice string, failed bool) {
	c, st, ok := s.lookup(w, r)
	if !ok {
		return
	}
	p := s.renderStep(r, st)
	i := slices.Index(c.Steps, st)
	type variant struct {
		Name, URL string
		Current   bool
	}
	variants := []variant{{"default", stepURL(st) + p.query(""), p.Locale == ""}}
	for _, loc := range slices.Sorted(keys(st.Variants)) {
		variants = append(variants, variant{loc, stepURL(st) + p.query(loc), p.Locale == loc})
	}
	var ab []variant // the A/B variants, with their share
	if len(st.AB) > 0 {
		rest := 100
		for _, v := range st.AB {
			rest -= v.Split
		}
		cur := cmp.Or(p.ABVariant, campaign.VariantA)
		ab = append(ab, variant{fmt.Sprintf("a (%d%%)", rest), stepURL(st) + p.queryFor(p.Locale, campaign.VariantA), cur == campaign.VariantA})
		for _, v := range st.AB {
			ab = append(ab, variant{fmt.Sprintf("%s (%d%%)", v.Name, v.Split), stepURL(st) + p.queryFor(p.Locale, v.Name), cur == v.Name})
		}
	}
	data := struct {
		page
		Campaign   *campaign.Campaign
		Step       *campaign.Step
		Index      int
		Prev, Next string
		Preview    *preview
		FrameURL   string
		Variants   []variant
		ABVariants []variant
		SenderName string
		// TestSend is true when retain web can send test emails; Sent and
		// SendError say how the last one went.
		TestSend        bool
		Sent, SendError string
	}{
		page: page{
			Title:    st.ID,
			Crumbs:   []crumb{{c.Name, campaignURL(c)}, {st.Slug, stepURL(st)}},
			Problems: problemsIn(s.d.Problems, dirOf(c.Path)),
			Note:     s.d.ProblemsNote,
		},
		Campaign: c, Step: st, Index: i, Preview: p,
		FrameURL: stepURL(st) + "/html" + p.query(p.Locale),
		Variants: variants, ABVariants: ab,
		TestSend: s.d.TestSend != nil,
	}
	if failed {
		data.SendError = notice
	} else if notice != "" {
		data.Sent = notice
	} else if to := r.URL.Query().Get("sent"); to != "" {
		data.Sent = "Test email sent to " + to + "."
	}
	if i > 0 {
		data.Prev = stepURL(c.Steps[i-1]) + p.queryFor("", "")
	}
	if i+1 < len(c.Steps) {
		data.Next = stepURL(c.Steps[i+1]) + p.queryFor("", "")
	}
	if set := s.set(); set.Lifecycle != nil {
		data.SenderName = set.Lifecycle.Sender.Name
	}
	s.render(w, p.Status, "step.html", data)
}

func keys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// stepHTML serves a step's HTML part on its own, for the preview's iframe. The
// email is marketers' content with customer data in it: it is served sandboxed,
// without scripts and without access to the preview's origin.
func (s *Server) stepHTML(w http.ResponseWriter, r *http.Request) {
	_, st, ok := s.lookup(w, r)
	if !ok {
		return
	}
	p := s.renderStep(r, st)
	if p.Email == nil {
		http.Error(w, p.Err, p.Status)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; frame-ancestors 'self'")
	io.WriteString(w, p.Email.HTML)
}

// formatDelay writes a step's delay as campaign files do: 0, 2d, 3h, 90m.
func formatDelay(d time.Duration) string {
	switch {
	case d == 0:
		return "immediately"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// formatWhen says when customers get a campaign: its trigger, or a
// broadcast's send time.
func formatWhen(c *campaign.Campaign) string {
	if c.IsBroadcast() {
		return "broadcast at " + c.Broadcast.SendAt.Source
	}
	return formatTrigger(c.Trigger)
}

func formatTrigger(t campaign.Trigger) string {
	var s string
	switch {
	case t.Stage != "":
		s = "entering stage " + t.Stage
	case t.Event != "":
		s = "event " + t.Event
	default:
		return "—"
	}
	if t.Where != nil {
		s += " where " + t.Where.Source
	}
	return s
}
