package web

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/browsertest"
)

// TestBrowserPreviewClickThroughAndUnsubscribe drives headless Chromium through
// the preview pages as a marketer would: the campaign list, a campaign, a step
// with its HTML part in the iframe; then, as a customer, through the unsubscribe
// confirmation page. It saves a screenshot of the step page.
func TestBrowserPreviewClickThroughAndUnsubscribe(t *testing.T) {
	browsertest.Require(t)
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "grace@example.org", FirstName: "Grace"})
	ctx := browsertest.New(t, 30*time.Second)

	// The browser sends the token as Basic credentials with every request, as
	// one does after its sign-in prompt.
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("marketing:"+uiToken))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}

	err := chromedp.Do(ctx,
		chromedp.Navigate(b.ts.URL+"/campaigns"),
		chromedp.Click(chromedp.CSS(`a[href="/campaigns/onboarding"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/campaigns/onboarding/welcome"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/campaigns/onboarding/welcome"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#subject`)),
	)
	if err != nil {
		t.Fatalf("click through to the welcome step: %v", err)
	}
	subject, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#subject`)))
	if err != nil || subject != "Welcome, Ada" {
		t.Errorf("subject on the step page = %q, %v; want %q", subject, err, "Welcome, Ada")
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#text-part`)))
	if err != nil || !strings.Contains(text, "Hello Ada, welcome to Acme.") {
		t.Errorf("text part = %q, %v", text, err)
	}

	// The same step for a stored customer, through the form.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#customer`), "c1"),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#customer[value="c1"]`)),
	)
	if err != nil {
		t.Fatalf("preview for c1: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("#subject")?.textContent === "Welcome, Grace"`)); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("the form did not show the step for c1 (at %s): %v", loc, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "preview-step.png", png)
	if got := iframeText(t, ctx); !strings.Contains(got, "Hello Grace, welcome to Acme.") || !strings.Contains(got, "Open your dashboard") {
		t.Errorf("the iframe shows %q, want the welcome email's HTML part for Grace", got)
	}

	// A customer follows the unsubscribe link of an email: GET shows a
	// confirmation, the button unsubscribes.
	resp, _ := b.get(t, "/u/x", noAuth)
	if resp.StatusCode == http.StatusNotFound && !strings.Contains(resp.Header.Get("Content-Type"), "html") {
		t.Log("no unsubscribe pages (web/links.go) yet: the unsubscribe flow is not driven")
		return
	}
	u, err := url.Parse(b.signer.UnsubscribeURL("c1", ""))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(b.ts.URL+u.Path),
		chromedp.WaitVisible(chromedp.CSS(`form button[type=submit]`)),
	)
	if err != nil {
		t.Fatalf("unsubscribe page: %v", err)
	}
	if c, _ := b.store.Customer(ctx, "c1"); c.Unsubscribed {
		t.Fatal("opening the unsubscribe page (GET) unsubscribed the customer")
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`form button[type=submit]`))); err != nil {
		t.Fatalf("unsubscribe button: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "You are unsubscribed")]`))); err != nil {
		t.Fatalf("no confirmation after the unsubscribe button: %v", err)
	}
	if c, _ := b.store.Customer(ctx, "c1"); !c.Unsubscribed {
		t.Error("the unsubscribe button left the customer subscribed")
	}
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "unsubscribed.png", png)
}

// iframeText returns the text of the document in the step page's iframe. The
// iframe is sandboxed, so Chromium runs it in a process of its own, as a target
// of its own (chromedp.FromNode cannot reach into it): the test attaches to it.
func iframeText(t *testing.T, ctx context.Context) string {
	t.Helper()
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#html-part`), "src"))
	if err != nil || !src.Exists {
		t.Fatalf("no iframe on the step page: %v", err)
	}
	var id target.ID
	for deadline := time.Now().Add(5 * time.Second); id == "" && time.Now().Before(deadline); {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasSuffix(info.URL, src.Value) {
				id = info.TargetID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatalf("Chromium shows no iframe target for %s", src.Value)
	}
	// The iframe's context lives as long as the test: cancelling it earlier
	// detaches the page's own session too.
	fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	text, err := chromedp.Run(fctx, chromedp.Text(chromedp.CSS(`body`)))
	if err != nil {
		t.Fatalf("read the iframe's document: %v", err)
	}
	return text
}
