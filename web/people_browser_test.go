package web

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/internal/browsertest"
)

// TestBrowserPeoplePage drives headless Chromium through the people page as a
// support person would: from the nav, a search by email, the customer's page
// with its stage history, its enrollment and next step, and the welcome email
// the real worker sent (from the send ledger); then a search that matches
// everyone, paged through five at a time with the next-page link, each
// customer on exactly one page. It saves screenshots of both pages.
func TestBrowserPeoplePage(t *testing.T) {
	browsertest.Require(t)
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "grace@example.org", FirstName: "Grace", Name: "Grace Hopper"})
	want := []string{"c1"}
	for i := 2; i <= 12; i++ {
		id := fmt.Sprintf("c%d", i)
		want = append(want, id)
		b.signUp(t, &ingest.Record{ID: id, Email: fmt.Sprintf("person%d@example.org", i)})
	}
	if n := len(b.sendDue(t).Messages()); n != len(want) {
		t.Fatalf("the worker sent %d welcomes, want %d", n, len(want))
	}
	ctx := browsertest.New(t, 60*time.Second)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("support:"+uiToken))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}

	err := chromedp.Do(ctx,
		chromedp.Navigate(b.ts.URL+"/campaigns"),
		chromedp.Click(chromedp.CSS(`nav a[href="/people"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#results`)),
		chromedp.SendKeys(chromedp.CSS(`#q`), "grace@example.org"),
		chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#q[value="grace@example.org"]`)),
	)
	if err != nil {
		t.Fatalf("search by email: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr.person td.mono a")].map(a => a.textContent)`))
	if err != nil || !slices.Equal(rows, []string{"c1"}) {
		t.Fatalf("the search for grace@example.org listed %v, %v; want c1", rows, err)
	}

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr.person a[href="/people/c1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#emails`)),
	)
	if err != nil {
		t.Fatalf("open c1: %v", err)
	}
	history, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#history tbody`)))
	if err != nil || !strings.Contains(history, "onboarding") || !strings.Contains(history, "event signed_up") {
		t.Errorf("stage history = %q, %v; want the move to onboarding on signed_up", history, err)
	}
	next, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr.enrollment[data-campaign="onboarding"] td.next`)))
	if err != nil || !strings.Contains(next, "onboarding/first-project") || !strings.Contains(next, "due Wed 4 Mar 2026 10:00 CET") {
		t.Errorf("the onboarding enrollment's next step = %q, %v; want first-project due two days later in Amsterdam", next, err)
	}
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr.email[data-step="onboarding/welcome"] td.state`)))
	if err != nil || state != "sent" {
		t.Errorf("the welcome's state = %q, %v; want sent (from the ledger)", state, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "person.png", png)

	// The step's preview, for this customer, is a click away.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr.email[data-step="onboarding/welcome"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`#customer[value="c1"]`)),
	)
	if err != nil {
		t.Fatalf("open the welcome's preview from the email row: %v", err)
	}

	// Everyone, five at a time.
	if err := chromedp.Do(ctx, chromedp.Navigate(b.ts.URL+"/people?q=example.org&limit=5"), chromedp.WaitVisible(chromedp.CSS(`#results`))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatal("the pages never end")
		}
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr.person td.mono a")].map(a => a.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 5 {
			t.Errorf("page %d lists %d customers, limit 5", page, len(rows))
		}
		got = append(got, rows...)
		if page == 0 {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			browsertest.SaveArtifact(t, "people.png", png)
		}
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#next-page")?.getAttribute("href") ?? ""`))
		if err != nil {
			t.Fatal(err)
		}
		if href == "" {
			break
		}
		// The page before is marked, so that waiting for the results waits
		// for the next page's.
		err = chromedp.Do(ctx,
			chromedp.SetAttributeValue(chromedp.CSS(`#results`), "data-seen", "1"),
			chromedp.Click(chromedp.CSS(`#next-page`)),
			chromedp.WaitVisible(chromedp.CSS(`#results:not([data-seen])`)),
		)
		if err != nil {
			t.Fatalf("next page (%s): %v", href, err)
		}
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != b.ts.URL+href {
			t.Fatalf("the next-page link led to %s, %v; want %s", loc, err, href)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("paging 5 at a time listed %v, want each of %v once", got, want)
	}
}
