package queue

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/link"
)

func TestWorkerRewritesLinksIntoSignedClicksButNotUnsubscribe(t *testing.T) {
	b := setup(t)
	signer, err := link.NewSigner("0123456789abcdef0123456789abcdef", "https://retain.acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b.signUp(t, "c1", "Ada")
	c, err := b.store.Customer(b.ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	st := b.applier.Engine.Set().Step("onboarding/welcome")

	plain, err := b.worker.message(c, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plain.HTML, `href="https://app.example.com/"`) || strings.Contains(plain.HTML, "/c/") {
		t.Errorf("without Click the links must stay as written:\n%s", plain.HTML)
	}

	b.worker.cfg.Click = signer.ClickURL
	m, err := b.worker.message(c, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	click := signer.Token(link.Claims{Kind: link.Click, Customer: "c1", Campaign: "onboarding", Step: "onboarding/welcome", URL: "https://app.example.com/"})
	clickURL := "https://retain.acme.example/c/" + click
	if !strings.Contains(m.HTML, `href="`+clickURL+`"`) || strings.Contains(m.HTML, `href="https://app.example.com/"`) {
		t.Errorf("HTML part: the dashboard link is not the signed click link:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, "("+clickURL+")") || strings.Contains(m.Text, "(https://app.example.com/)") {
		t.Errorf("text part: the dashboard link is not the signed click link:\n%s", m.Text)
	}
	for _, keep := range []string{"https://retain.acme.example/u/c1", "https://retain.acme.example/p/c1"} {
		if !strings.Contains(m.HTML, `href="`+keep+`"`) || !strings.Contains(m.Text, keep) {
			t.Errorf("%s was rewritten or lost", keep)
		}
	}
	if m.Unsubscribe != "https://retain.acme.example/u/c1" {
		t.Errorf("List-Unsubscribe = %q, want the one-click link itself", m.Unsubscribe)
	}
	claims, err := signer.Verify(click, time.Now())
	if err != nil || claims.URL != "https://app.example.com/" {
		t.Errorf("click token: %+v, %v", claims, err)
	}
}

func TestTrackClicksRewritesOnlyHTTPLinksOfAnchorsAndTextParentheses(t *testing.T) {
	click := func(u string) (string, error) {
		if !link.Trackable(u) {
			return "", link.ErrNotTrackable
		}
		return "https://r.example/c/" + strings.NewReplacer("https://", "", "/", "_", "?", "Q", "&", "A").Replace(u), nil
	}
	skip := map[string]bool{"https://r.example/u/tok": true, "https://r.example/nps/tok?score=9": true}
	htmlIn := `<link href="https://fonts.example/css" rel="stylesheet">` +
		`<a href="https://shop.example/p?a=1&amp;b=2">shop</a> ` +
		`<a class="x" href='https://docs.example/'>docs</a> ` +
		`<a href="javascript:alert(1)">js</a> <a href="mailto:hi@acme.example">mail</a> <a href="#top">top</a> ` +
		`<a href="https://r.example/u/tok">unsubscribe</a> <a href="https://r.example/nps/tok?score=9">9</a>`
	textIn := "shop (https://shop.example/p?a=1&b=2), js (javascript:alert(1)), unsubscribe (https://r.example/u/tok)\n" +
		"Unsubscribe: https://r.example/u/tok\nsee https://bare.example/ too"
	gotHTML, gotText := trackClicks(htmlIn, textIn, skip, click)
	wantHTML := `<link href="https://fonts.example/css" rel="stylesheet">` +
		`<a href="https://r.example/c/shop.example_pQa=1Ab=2">shop</a> ` +
		`<a class="x" href='https://r.example/c/docs.example_'>docs</a> ` +
		`<a href="javascript:alert(1)">js</a> <a href="mailto:hi@acme.example">mail</a> <a href="#top">top</a> ` +
		`<a href="https://r.example/u/tok">unsubscribe</a> <a href="https://r.example/nps/tok?score=9">9</a>`
	wantText := "shop (https://r.example/c/shop.example_pQa=1Ab=2), js (javascript:alert(1)), unsubscribe (https://r.example/u/tok)\n" +
		"Unsubscribe: https://r.example/u/tok\nsee https://bare.example/ too"
	if diff := cmp.Diff(wantHTML, gotHTML); diff != "" {
		t.Errorf("HTML (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantText, gotText); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}
}
