package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/report"
	"github.com/retainmail/retain/store"
)

// npsBundle is setupLinks with the report's Recorder on the store, so applying
// the queued events as the worker does moves the report's counters.
type npsBundle struct {
	*linksBundle
	applier *ingest.Applier
}

func setupNPS(t *testing.T) *npsBundle {
	t.Helper()
	b := setupLinks(t)
	b.store.Also = report.NewRecorder(b.prefix, b.engine.Set().Lifecycle).Record
	return &npsBundle{linksBundle: b, applier: &ingest.Applier{Store: b.store, Engine: b.engine, Now: func() time.Time { return b.now }}}
}

// work applies the queued events as the worker would and returns how many it
// applied now (those applied before are refused by the store).
func (b *npsBundle) work(t *testing.T) int {
	t.Helper()
	n := 0
	for _, p := range b.queued(t) {
		_, err := b.applier.Event(b.ctx, p.Customer, p.Event)
		switch {
		case errors.Is(err, store.ErrDuplicate):
		case err != nil:
			t.Fatalf("apply %s: %v", p.Event.ID, err)
		default:
			n++
		}
	}
	return n
}

func (b *npsBundle) nps(t *testing.T) report.NPS {
	t.Helper()
	r, err := report.Read(b.ctx, b.rdb, b.prefix, b.engine.Set(), b.now.AddDate(0, 0, -7), "")
	if err != nil {
		t.Fatal(err)
	}
	return r.NPS
}

// npsNonceField finds the answer form's nonce on a confirmation page.
var npsNonceField = regexp.MustCompile(`name="answer" value="([0-9a-f]+)"`)

// confirm GETs an NPS link as a browser does and posts the confirmation form
// with score (the link's own score or another button of the page).
func (b *npsBundle) confirm(t *testing.T, target string, score int) string {
	t.Helper()
	res, body := b.do(t, http.MethodGet, target, nil)
	m := npsNonceField.FindStringSubmatch(body)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s = %d, no answer form:\n%s", target, res.StatusCode, body)
	}
	res, body = b.do(t, http.MethodPost, target, url.Values{"action": {"answer"}, "answer": {m[1]}, "score": {strconv.Itoa(score)}})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Thanks for your answer") {
		t.Fatalf("POST %s = %d:\n%s", target, res.StatusCode, body)
	}
	return body
}

func TestNPSLinkScannerGETsOfEveryScoreRecordNothing(t *testing.T) {
	b := setupNPS(t)
	for score := range 11 {
		target := b.path(t, b.signer.NPSURL("c1", "nps", score, b.now, 24*time.Hour))
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			res, body := b.do(t, method, target, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s score %d = %d:\n%s", method, score, res.StatusCode, body)
			}
			if method == http.MethodHead {
				continue
			}
			// A confirmation: the link's score, a form that posts it, and a
			// button for every other score; no script.
			for _, want := range []string{`<form method="post">`, `name="score" value="` + strconv.Itoa(score) + `"`, `value="0"`, `value="10"`} {
				if !strings.Contains(body, want) {
					t.Errorf("score %d page lacks %q:\n%s", score, want, body)
				}
			}
			if strings.Contains(body, "<script") || strings.Contains(body, "Thanks for your answer") {
				t.Errorf("score %d page:\n%s", score, body)
			}
		}
	}
	if q := b.queued(t); len(q) != 0 {
		t.Errorf("GETs queued %d events, want none: %v", len(q), q)
	}
	b.work(t)
	if n := b.nps(t); n.Answers != 0 {
		t.Errorf("after a scanner fetched all 11 score links the report counts %+v, want no answer", n)
	}
}

func TestNPSPostRecordsTheAnswerAndAChangedScoreReplacesIt(t *testing.T) {
	b := setupNPS(t)
	three := b.path(t, b.signer.NPSURL("c1", "nps", 3, b.now, 24*time.Hour))
	body := b.confirm(t, three, 3)
	if !strings.Contains(body, `<p class="score">3`) || !strings.Contains(body, `name="comment"`) {
		t.Errorf("thanks page:\n%s", body)
	}
	if n := b.work(t); n != 1 {
		t.Fatalf("applied %d events, want the answer", n)
	}
	if n := b.nps(t); n.Answers != 1 || n.Detractors != 1 {
		t.Errorf("after answering 3: %+v, want one detractor", n)
	}

	// The same customer changes their mind, from another score link of the same
	// email, and then again from the page's buttons: one person, the last score.
	b.now = b.now.Add(time.Minute)
	b.confirm(t, b.path(t, b.signer.NPSURL("c1", "nps", 9, b.now, 24*time.Hour)), 9)
	b.work(t)
	b.now = b.now.Add(time.Minute)
	b.confirm(t, three, 8)
	b.work(t)
	if n := b.nps(t); n.Answers != 1 || n.Passives != 1 || n.Detractors != 0 || n.Promoters != 0 {
		t.Errorf("after 3, 9, then 8: %+v, want one passive", n)
	}

	// A comment repeats the answer and does not count again; nor does
	// posting the same form twice.
	res, _ := b.do(t, http.MethodPost, three, url.Values{"action": {"comment"}, "score": {"8"}, "comment": {"More integrations"}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("comment = %d", res.StatusCode)
	}
	b.work(t)
	if n := b.nps(t); n.Answers != 1 || n.Passives != 1 {
		t.Errorf("after a comment: %+v, want one passive", n)
	}
	evs, err := b.store.Events(b.ctx, "c1", 10)
	if err != nil {
		t.Fatal(err)
	}
	var answers, comments int
	for _, ev := range evs {
		if ev.Name != "nps_submitted" {
			continue
		}
		if ev.Data["comment"] != nil {
			comments++
			if ev.Data["comment"] != "More integrations" || ev.Data["score"] != 8.0 {
				t.Errorf("comment event %+v", ev)
			}
			continue
		}
		answers++
		if ev.Data["campaign"] != "nps" || ev.Data["enrollment"] == nil {
			t.Errorf("answer event %+v lacks its survey", ev)
		}
	}
	if answers != 3 || comments != 1 {
		t.Errorf("history has %d answers and %d comments, want every answer (3) and the comment", answers, comments)
	}

	// Another customer is another person.
	b.confirm(t, b.path(t, b.signer.NPSURL("c2", "nps", 10, b.now, 24*time.Hour)), 10)
	b.work(t)
	if n := b.nps(t); n.Answers != 2 || n.Passives != 1 || n.Promoters != 1 || n.Score != 50 {
		t.Errorf("with c2's 10: %+v, want a passive and a promoter, NPS 50", n)
	}
}

func TestNPSPostedTwiceRecordsOneAnswer(t *testing.T) {
	b := setupNPS(t)
	target := b.path(t, b.signer.NPSURL("c1", "nps", 10, b.now, 24*time.Hour))
	_, body := b.do(t, http.MethodGet, target, nil)
	m := npsNonceField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no answer form:\n%s", body)
	}
	form := url.Values{"action": {"answer"}, "answer": {m[1]}, "score": {"10"}}
	for range 2 { // a double click
		if res, _ := b.do(t, http.MethodPost, target, form); res.StatusCode != http.StatusOK {
			t.Fatalf("POST = %d", res.StatusCode)
		}
	}
	if q := b.queued(t); len(q) != 1 {
		t.Errorf("queued %d events, want 1", len(q))
	}
}

func TestNPSAnswerIsPerSurveyEmail(t *testing.T) {
	b := setupNPS(t)
	// Two rounds of the survey (enrollments 1 and 2): the same person answers
	// each, and each round counts.
	for n, score := range map[int]int{1: 2, 2: 10} {
		tok := b.signer.Token(link.Claims{Kind: link.NPS, Customer: "c1", Campaign: "nps", Enrollment: n, Score: score})
		b.confirm(t, "/nps/"+tok, score)
	}
	b.work(t)
	if n := b.nps(t); n.Answers != 2 || n.Detractors != 1 || n.Promoters != 1 {
		t.Errorf("two rounds: %+v, want a detractor and a promoter", n)
	}
	evs, _ := b.store.Events(b.ctx, "c1", 5)
	seen := map[float64]bool{}
	for _, ev := range evs {
		if ev.Name == "nps_submitted" {
			n, _ := ev.Data["enrollment"].(float64)
			seen[n] = true
		}
	}
	if !seen[1] || !seen[2] {
		t.Errorf("events %+v, want enrollments 1 and 2", evs)
	}
}

func TestNPSAnswerOfAnErasedCustomerIs404(t *testing.T) {
	b := setupNPS(t)
	target := b.path(t, b.signer.NPSURL("gone", "nps", 7, b.now, 24*time.Hour))
	if res, body := b.do(t, http.MethodGet, target, nil); res.StatusCode != http.StatusOK {
		t.Errorf("GET = %d:\n%s", res.StatusCode, body)
	}
	if res, _ := b.do(t, http.MethodPost, target, url.Values{"action": {"answer"}, "score": {"7"}}); res.StatusCode != http.StatusNotFound {
		t.Errorf("POST = %d, want 404", res.StatusCode)
	}
	if q := b.queued(t); len(q) != 0 {
		t.Errorf("queued %v", q)
	}
}
