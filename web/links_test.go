package web

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/queue"
)

var oneClick = url.Values{"List-Unsubscribe": {"One-Click"}}

func TestOneClickPostUnsubscribesAndTheNextDecideStops(t *testing.T) {
	b := setupLinks(t)
	if d := b.engine.Decide(b.customer(t, "c1"), "onboarding", b.now); d.Action != lifecycle.Send {
		t.Fatalf("before: Decide = %v %q, want send", d.Action, d.Reason)
	}
	res, body := b.do(t, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c1", "")), oneClick)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "You are unsubscribed") {
		t.Fatalf("POST = %d:\n%s", res.StatusCode, body)
	}
	c := b.customer(t, "c1")
	if !c.Unsubscribed {
		t.Fatal("the store does not show c1 unsubscribed")
	}
	if d := b.engine.Decide(c, "onboarding", b.now); d.Action != lifecycle.Stop || d.Reason != "unsubscribed" {
		t.Errorf("after: Decide = %v %q, want stop unsubscribed", d.Action, d.Reason)
	}
	var due []string // a lease holds the customers of one shard: claim until none is due
	for {
		l, err := b.store.ClaimDue(b.ctx, b.now, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			break
		}
		due = append(due, l.IDs...)
	}
	if slices.Sort(due); !slices.Equal(due, []string{"c1", "c2"}) {
		t.Errorf("due customers = %v: the unsubscribe must keep c1 due so the worker ends its enrollment", due)
	}
	evs, err := b.store.Events(b.ctx, "c1", 1)
	if err != nil || len(evs) != 1 || evs[0].Name != "unsubscribed" || !evs[0].At.Equal(b.now) {
		t.Fatalf("consent note = %+v, %v", evs, err)
	}
	if diff := cmp.Diff(map[string]any{"how": "one-click (RFC 8058 List-Unsubscribe-Post)"}, evs[0].Data); diff != "" {
		t.Errorf("consent note data (-want +got):\n%s", diff)
	}
	if other := b.customer(t, "c2"); other.Unsubscribed {
		t.Error("c2 was unsubscribed too")
	}

	// Again: nothing changes, and the answer is still a success.
	res, body = b.do(t, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c1", "")), oneClick)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "already unsubscribed") {
		t.Errorf("second POST = %d:\n%s", res.StatusCode, body)
	}
	if evs, _ := b.store.Events(b.ctx, "c1", 0); evs[0].Name != "unsubscribed" || len(evs) > 1 && evs[1].Name == "unsubscribed" {
		t.Errorf("a second unsubscribe was recorded: %+v", evs)
	}
}

func TestOneClickAcceptsAMultipartBody(t *testing.T) {
	b := setupLinks(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("List-Unsubscribe", "One-Click")
	mw.Close()
	req := httptest.NewRequestWithContext(b.ctx, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c2", "")), &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	b.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !b.customer(t, "c2").Unsubscribed {
		t.Errorf("multipart POST = %d, unsubscribed %v", rec.Code, b.customer(t, "c2").Unsubscribed)
	}
}

func TestUnsubscribeGetShowsAFormAndChangesNothing(t *testing.T) {
	b := setupLinks(t)
	before := b.customer(t, "c1")
	target := b.path(t, b.signer.UnsubscribeURL("c1", ""))
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		res, body := b.do(t, method, target, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s = %d", method, res.StatusCode)
		}
		if method == http.MethodGet {
			for _, want := range []string{`<form method="post">`, `name="List-Unsubscribe" value="One-Click"`, "Acme Projects", "/p/", `name="viewport"`} {
				if !strings.Contains(body, want) {
					t.Errorf("GET page lacks %s:\n%s", want, body)
				}
			}
			if strings.Contains(body, "<script") {
				t.Error("the page uses a script")
			}
		}
	}
	if diff := cmp.Diff(before, b.customer(t, "c1")); diff != "" {
		t.Errorf("GET changed the customer (-before +after):\n%s", diff)
	}
	// A POST without the RFC 8058 body is not an unsubscribe either.
	if res, _ := b.do(t, http.MethodPost, target, url.Values{"something": {"else"}}); res.StatusCode != http.StatusBadRequest {
		t.Errorf("POST without List-Unsubscribe=One-Click = %d, want 400", res.StatusCode)
	}
	if b.customer(t, "c1").Unsubscribed {
		t.Error("c1 unsubscribed without asking")
	}
}

func TestTamperedTokensAreRejectedAndChangeNothing(t *testing.T) {
	b := setupLinks(t)
	before := b.customer(t, "c1")
	tok := b.signer.Token(link.Claims{Kind: link.Unsubscribe, Customer: "c1"})
	other := b.signer.Token(link.Claims{Kind: link.Unsubscribe, Customer: "c2"})
	p, sig, _ := strings.Cut(tok, ".")
	p2, _, _ := strings.Cut(other, ".")
	otherSecret, _ := link.NewSigner(strings.Repeat("x", 32), "https://retain.acme.example")
	for name, bad := range map[string]string{
		"flipped byte":                     p[:5] + string(p[5]^1) + p[6:] + "." + sig,
		"flipped signature byte":           p + "." + string(sig[0]^1) + sig[1:],
		"c2's payload with c1's signature": p2 + "." + sig,
		"no signature":                     p,
		"another secret":                   otherSecret.Token(link.Claims{Kind: link.Unsubscribe, Customer: "c1"}),
		"a preference link's token":        b.signer.Token(link.Claims{Kind: link.Preferences, Customer: "c1"}),
		"an NPS link's token":              b.signer.Token(link.Claims{Kind: link.NPS, Customer: "c1", Campaign: "nps", Score: 3}),
		"garbage":                          "%3Cscript%3E",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			res, body := b.do(t, method, "/u/"+bad, oneClick)
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "This link is not valid") || strings.Contains(body, "goroutine") {
				t.Errorf("%s, %s: %d\n%s", name, method, res.StatusCode, body)
			}
		}
		if name == "a preference link's token" {
			continue // valid on /p/
		}
		res, _ := b.do(t, http.MethodPost, "/p/"+bad, url.Values{"action": {"unsubscribe"}})
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s on /p/: %d, want 400", name, res.StatusCode)
		}
	}
	for _, id := range []string{"c1", "c2"} {
		if c := b.customer(t, id); c.Unsubscribed || len(c.OptedOut) > 0 {
			t.Errorf("%s changed: unsubscribed %v, opted out %v", id, c.Unsubscribed, c.OptedOut)
		}
	}
	if diff := cmp.Diff(before, b.customer(t, "c1")); diff != "" {
		t.Errorf("c1 changed (-before +after):\n%s", diff)
	}
	if q := b.queued(t); len(q) != 0 {
		t.Errorf("queued %v", q)
	}
}

func TestTopicUnsubscribeLinkOptsOutOfThatTopicOnly(t *testing.T) {
	b := setupLinks(t)
	res, _ := b.do(t, http.MethodPost, b.path(t, b.signer.UnsubscribeURL("c1", "onboarding")), oneClick)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST = %d", res.StatusCode)
	}
	c := b.customer(t, "c1")
	if c.Unsubscribed || !cmp.Equal(c.OptedOut, []string{"onboarding"}) {
		t.Errorf("unsubscribed %v, opted out %v; want only onboarding", c.Unsubscribed, c.OptedOut)
	}
	if d := b.engine.Decide(c, "onboarding", b.now); d.Action != lifecycle.Stop || d.Reason != "opted out of onboarding" {
		t.Errorf("Decide = %v %q", d.Action, d.Reason)
	}
}

func TestPreferencePageShowsTopicsAndSavesThem(t *testing.T) {
	b := setupLinks(t)
	target := b.path(t, b.signer.PreferencesURL("c1"))
	res, body := b.do(t, http.MethodGet, target, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET = %d", res.StatusCode)
	}
	for _, want := range []string{`value="check-ins" checked`, "Churned, Win-back", `value="education" checked`, `value="shop" checked`, `value="surveys" checked`, `value="news" checked`, "Unsubscribe from all emails"} {
		if !strings.Contains(body, want) {
			t.Errorf("preference page lacks %q:\n%s", want, body)
		}
	}

	// Keep education and shop only.
	b.now = b.now.Add(time.Minute)
	res, body = b.do(t, http.MethodPost, target, url.Values{"action": {"save"}, "topic": {"education", "shop", "no-such-topic"}})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Your preferences are saved") || !strings.Contains(body, `value="shop" checked`) || strings.Contains(body, `value="surveys" checked`) {
		t.Fatalf("save = %d:\n%s", res.StatusCode, body)
	}
	c := b.customer(t, "c1")
	if diff := cmp.Diff([]string{"check-ins", "news", "onboarding", "surveys"}, c.OptedOut); diff != "" || c.Unsubscribed {
		t.Errorf("opted out (-want +got):\n%s unsubscribed %v", diff, c.Unsubscribed)
	}
	if d := b.engine.Decide(c, "onboarding", b.now); d.Action != lifecycle.Stop || d.Reason != "opted out of onboarding" {
		t.Errorf("Decide = %v %q", d.Action, d.Reason)
	}
	evs, _ := b.store.Events(b.ctx, "c1", 1)
	want := lifecycle.Event{Name: "preferences_changed", At: b.now, Data: map[string]any{
		"how": "preference page", "unsubscribed": false, "opted_out": []any{"check-ins", "news", "onboarding", "surveys"}}}
	if len(evs) != 1 || !cmp.Equal(want, evs[0]) {
		t.Errorf("consent note = %+v, want %+v", evs, want)
	}

	// Unsubscribe from all, then come back to every topic.
	b.do(t, http.MethodPost, target, url.Values{"action": {"unsubscribe"}, "topic": {"shop"}})
	if c := b.customer(t, "c1"); !c.Unsubscribed || len(c.OptedOut) != 4 {
		t.Errorf("after unsubscribe from all: unsubscribed %v, opted out %v", c.Unsubscribed, c.OptedOut)
	}
	b.do(t, http.MethodPost, target, url.Values{"action": {"save"}, "topic": {"check-ins", "education", "news", "onboarding", "shop", "surveys"}})
	if c := b.customer(t, "c1"); c.Unsubscribed || len(c.OptedOut) != 0 {
		t.Errorf("after subscribing again: unsubscribed %v, opted out %v", c.Unsubscribed, c.OptedOut)
	}
}

func TestPreferencePageOfAnErasedCustomerIs404(t *testing.T) {
	b := setupLinks(t)
	target := b.path(t, b.signer.PreferencesURL("gone"))
	if res, _ := b.do(t, http.MethodGet, target, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET = %d, want 404", res.StatusCode)
	}
	if res, _ := b.do(t, http.MethodPost, target, url.Values{"action": {"save"}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("POST = %d, want 404", res.StatusCode)
	}
	if _, err := b.store.Customer(b.ctx, "gone"); err == nil {
		t.Error("saving preferences created a customer")
	}
}

func TestNPSLinkRecordsTheTokensScoreNotTheQuery(t *testing.T) {
	b := setupLinks(t)
	signed := b.path(t, b.signer.NPSURL("c1", "nps", 9, b.now, 24*time.Hour))
	forged := strings.Replace(signed, "?score=9", "?score=0", 1)
	res, body := b.do(t, http.MethodGet, forged, nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `<p class="score">9`) || !strings.Contains(body, `<button type="submit" name="score" value="9">Send my answer`) {
		t.Fatalf("GET = %d:\n%s", res.StatusCode, body)
	}
	if q := b.queued(t); len(q) != 0 {
		t.Fatalf("GET queued %v", q)
	}
	// The confirmation form posted without a button's score: the token's.
	res, body = b.do(t, http.MethodPost, forged, url.Values{"action": {"answer"}, "answer": {"00ff"}})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `<p class="score">9`) || !strings.Contains(body, `name="comment"`) {
		t.Fatalf("POST = %d:\n%s", res.StatusCode, body)
	}
	q := b.queued(t)
	if len(q) != 1 {
		t.Fatalf("queued %d events, want 1: %v", len(q), q)
	}
	want := queue.EventPayload{Customer: "c1", Event: lifecycle.Event{ID: "nps:nps:0:9:00ff", Name: "nps_submitted", At: b.now,
		Data: map[string]any{"score": 9.0, "category": "promoter", "campaign": "nps", "enrollment": 0.0}}}
	for _, got := range q {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("queued event (-want +got):\n%s", diff)
		}
	}

	// A comment adds an nps_submitted event of its own, repeating the score.
	res, body = b.do(t, http.MethodPost, forged, url.Values{"action": {"comment"}, "comment": {"  Great support <3  "}, "score": {"9"}})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Thank you") {
		t.Fatalf("comment = %d:\n%s", res.StatusCode, body)
	}
	q = b.queued(t)
	var comments []queue.EventPayload
	for _, p := range q {
		if p.Event.Data["comment"] != nil {
			comments = append(comments, p)
		}
	}
	if len(q) != 2 || len(comments) != 1 {
		t.Fatalf("queued %v, want the answer and one comment", q)
	}
	wantData := map[string]any{"score": 9.0, "category": "promoter", "campaign": "nps", "enrollment": 0.0, "comment": "Great support <3"}
	if diff := cmp.Diff(wantData, comments[0].Event.Data); diff != "" || comments[0].Event.Name != "nps_submitted" || !strings.HasPrefix(comments[0].Event.ID, "nps:nps:0:9:comment:") {
		t.Errorf("comment event %+v (-want +got data):\n%s", comments[0].Event, diff)
	}
}

func TestNPSCategories(t *testing.T) {
	for score, want := range map[int]string{0: "detractor", 6: "detractor", 7: "passive", 8: "passive", 9: "promoter", 10: "promoter"} {
		if got := npsCategory(score); got != want {
			t.Errorf("npsCategory(%d) = %s, want %s", score, got, want)
		}
	}
}

func TestExpiredNPSLinkIsGone(t *testing.T) {
	b := setupLinks(t)
	signed := b.path(t, b.signer.NPSURL("c1", "nps", 3, b.now, time.Hour))
	b.now = b.now.Add(2 * time.Hour)
	res, body := b.do(t, http.MethodGet, signed, nil)
	if res.StatusCode != http.StatusGone || !strings.Contains(body, "This link has expired") {
		t.Errorf("GET = %d:\n%s", res.StatusCode, body)
	}
	if q := b.queued(t); len(q) != 0 {
		t.Errorf("queued %v", q)
	}
}

func TestClickRedirectsToTheSignedURLAndQueuesLinkClicked(t *testing.T) {
	b := setupLinks(t)
	signed, err := b.signer.ClickURL("c1", "onboarding", "onboarding/welcome", "https://app.example.com/projects/new?from=email&x=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		b.path(t, signed),
		b.path(t, signed) + "?url=https://evil.example/&next=https://evil.example/&u=https://evil.example/",
	} {
		res, _ := b.do(t, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://app.example.com/projects/new?from=email&x=1" {
			t.Errorf("GET %s = %d, Location %q", target, res.StatusCode, res.Header.Get("Location"))
		}
		if res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Error("the redirect would leak the token in Referer")
		}
	}
	q := b.queued(t)
	if len(q) != 1 {
		t.Fatalf("queued %v, want one link_clicked", q)
	}
	for _, got := range q {
		want := lifecycle.Event{ID: got.Event.ID, Name: "link_clicked", At: b.now, Data: map[string]any{
			"url": "https://app.example.com/projects/new?from=email&x=1", "campaign": "onboarding", "step": "onboarding/welcome"}}
		if diff := cmp.Diff(want, got.Event); diff != "" || got.Customer != "c1" || got.Event.ID == "" {
			t.Errorf("queued for %s (-want +got):\n%s", got.Customer, diff)
		}
	}
}

func TestJavascriptURLIsNeverSignedNorRedirected(t *testing.T) {
	b := setupLinks(t)
	if u, err := b.signer.ClickURL("c1", "onboarding", "onboarding/welcome", "javascript:alert(document.cookie)"); err == nil {
		t.Errorf("ClickURL signed a javascript: URL: %s", u)
	}
	// Even a token signed by hand (a bug elsewhere) is not followed.
	for _, bad := range []string{"javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "//evil.example/", "/relative"} {
		tok := b.signer.Token(link.Claims{Kind: link.Click, Customer: "c1", Campaign: "onboarding", Step: "onboarding/welcome", URL: bad})
		res, body := b.do(t, http.MethodGet, "/c/"+tok, nil)
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" || strings.Contains(body, bad) {
			t.Errorf("%s: %d, Location %q", bad, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// Nor is an unsubscribe token at /c/.
	if res, _ := b.do(t, http.MethodGet, "/c/"+b.signer.Token(link.Claims{Kind: link.Unsubscribe, Customer: "c1"}), nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("an unsubscribe token at /c/: %d", res.StatusCode)
	}
	if q := b.queued(t); len(q) != 0 {
		t.Errorf("queued %v", q)
	}
}
