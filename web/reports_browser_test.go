package web

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/retainmail/retain/internal/browsertest"
)

// TestBrowserReportsPage opens the reports page in headless Chromium with the
// fixture report, checks that the charts are drawn and the figures shown, picks
// a campaign through the form, and saves a screenshot of the whole page.
func TestBrowserReportsPage(t *testing.T) {
	browsertest.Require(t)
	b := setupReports(t, reportFixture(), nil)
	ctx := browsertest.New(t, 30*time.Second)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("marketing:"+uiToken))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.ts.URL+"/campaigns"),
		chromedp.Click(chromedp.CSS(`nav a[href="/reports"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nps-score`)),
	)
	if err != nil {
		t.Fatalf("open the reports page from the nav: %v", err)
	}
	score, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#nps-score`)))
	if err != nil || score != "+33" {
		t.Errorf("NPS score = %q, %v; want +33", score, err)
	}
	// Every chart is laid out by the browser with a size: SVG it understood.
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("svg.chart")].filter(s => s.getBoundingClientRect().width > 300 && s.getBBox().height > 20).length`))
	if err != nil || charts != 5 {
		t.Errorf("%d charts drawn, %v; want 5", charts, err)
	}
	repeat, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#repeat`)))
	if err != nil || !strings.Contains(repeat, "40%") || !strings.Contains(repeat, "27%") {
		t.Errorf("repeat-purchase section = %q, %v; want 40%% beside 27%%", repeat, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "reports.png", png)

	// The form narrows the report to one campaign.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`select[name=campaign]`), "onboarding"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#campaign-filter`)),
	)
	if err != nil {
		t.Fatalf("pick a campaign: %v", err)
	}
	if calls := b.calls(); len(calls) == 0 || calls[len(calls)-1].campaign != "onboarding" {
		t.Errorf("the form asked Reports for %+v, want campaign onboarding last", calls)
	}
}
