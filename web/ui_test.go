package web

import (
	"html"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
)

const uiCampaigns = "testdata/ui/campaigns"

func TestOperatorPagesNeedTheTokenAsBasicPassword(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	for _, path := range []string{"/campaigns", "/campaigns/onboarding", "/campaigns/onboarding/welcome",
		"/campaigns/onboarding/welcome/html", "/monitor/", "/metrics"} {
		for name, auth := range map[string]uiAuth{"no credentials": noAuth, "wrong password": wrongBasic} {
			resp, _ := b.get(t, path, auth)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s with %s: %d, WWW-Authenticate %q; want 401 asking for Basic auth",
					path, name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
		if resp, _ := b.get(t, path, basicAuth); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token as Basic password: %d, want 200", path, resp.StatusCode)
		}
	}
	// Prometheus may send the token as a bearer token; the pages take Basic only.
	if resp, _ := b.get(t, "/metrics", bearerAuth); resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with the bearer token: %d, want 200", resp.StatusCode)
	}
	if resp, _ := b.get(t, "/campaigns", bearerAuth); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/campaigns with a bearer token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := b.get(t, "/", noAuth); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/campaigns" {
		t.Errorf("/: %d to %q, want a redirect to /campaigns", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestCrossSiteFormPostsToOperatorPagesAreRefused(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.ts.URL+"/monitor/api/queues/sends:pause", nil)
	basicAuth(req)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST with remembered Basic credentials: %d, want 403", resp.StatusCode)
	}
}

func TestCampaignListShowsEveryCampaignAndTheCampaignPageItsSteps(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	_, body := b.get(t, "/campaigns", basicAuth)
	wantContains(t, "/campaigns", body, "Onboarding", `href="/campaigns/onboarding"`, "NPS survey", "entering stage onboarding")
	if strings.Contains(body, `id="problems"`) {
		t.Errorf("/campaigns shows lint problems for campaigns that lint")
	}
	_, body = b.get(t, "/campaigns/onboarding", basicAuth)
	wantContains(t, "/campaigns/onboarding", body,
		`href="/campaigns/onboarding/welcome"`, `href="/campaigns/onboarding/first-project"`,
		"Your first project", "2d", ">nl<", "account_closed")
	if resp, body := b.get(t, "/campaigns/nope", basicAuth); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `no campaign &#34;nope&#34;`) {
		t.Errorf("/campaigns/nope: %d, want 404 naming the campaign", resp.StatusCode)
	}
}

func TestStepPageShowsTheSampleCustomersSubjectTextAndHTML(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	resp, body := b.get(t, "/campaigns/onboarding/welcome", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	wantContains(t, "step page", body,
		"Welcome, Ada", "Your account is ready", // subject and preheader
		"Hello Ada, welcome to Acme.", // the text part, Markdown gone
		`<iframe id="html-part" src="/campaigns/onboarding/welcome/html"`, `sandbox="allow-popups`,
		`href="/campaigns/onboarding/first-project"`, // next step
	)
	resp, html := b.get(t, "/campaigns/onboarding/welcome/html", basicAuth)
	if !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("the email's HTML is served without a sandbox CSP: %q", resp.Header.Get("Content-Security-Policy"))
	}
	wantContains(t, "HTML part", html, "<strong>Acme</strong>", `href="https://app.example.com/"`, "Keizersgracht")
}

func TestStepPreviewForAStoredCustomerUsesTheirDataAndLocale(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	b.signUp(t, &ingest.Record{ID: "c1", Email: "grace@example.org", FirstName: "Grace", Attributes: map[string]any{"plan": "pro"}})
	b.signUp(t, &ingest.Record{ID: "c2", Email: "bram@example.org", FirstName: "Bram", Locale: "nl"})

	_, body := b.get(t, "/campaigns/onboarding/welcome?customer=c1", basicAuth)
	wantContains(t, "preview for c1", body, "Welcome, Grace", "You are on the pro plan.", "grace@example.org",
		`src="/campaigns/onboarding/welcome/html?customer=c1"`)
	_, html := b.get(t, "/campaigns/onboarding/welcome/html?customer=c1", basicAuth)
	// The customer's own signed unsubscribe link.
	wantContains(t, "HTML for c1", html, "http://retain.test/u/")

	_, body = b.get(t, "/campaigns/onboarding/welcome?customer=c2", basicAuth)
	wantContains(t, "preview for c2", body, "Welkom, Bram", "01-welcome.nl.md")

	resp, body := b.get(t, "/campaigns/onboarding/welcome?customer=ghost", basicAuth)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown customer: %d, want 404", resp.StatusCode)
	}
	wantContains(t, "preview for an unknown customer", body, `There is no customer with ID &#34;ghost&#34;.`)
}

func TestLocaleVariantPreview(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	_, body := b.get(t, "/campaigns/onboarding/welcome?locale=nl", basicAuth)
	wantContains(t, "nl variant", body, "Welkom, Ada", "Hallo Ada, welkom bij Acme.", `class="current">nl<`)
}

func TestBrokenCampaignsShowTheirLintProblems(t *testing.T) {
	b := setupUI(t, "testdata/ui/broken")
	if len(b.problems) == 0 {
		t.Fatal("testdata/ui/broken lints clean")
	}
	resp, body := b.get(t, "/campaigns", basicAuth)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/campaigns: %d, want 200: the list still helps", resp.StatusCode)
	}
	wantContains(t, "/campaigns", body, `id="problems"`,
		`testdata/ui/broken/onboarding/01-welcome.md:3:1: unknown key &#34;dealy&#34; in a step (did you mean &#34;delay&#34;?)`,
		`testdata/ui/broken/onboarding/01-welcome.md:5:19: unknown field &#34;Nickname&#34; in .Customer`)
	resp, body = b.get(t, "/campaigns/onboarding/next", basicAuth)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("step of campaigns that do not lint: %d, want 503", resp.StatusCode)
	}
	wantContains(t, "step page", body, "The campaigns do not lint", "unknown key &#34;dealy&#34;")
}

// TestPreviewLinksLeadToPagesThatSayTheyArePreviews: issue 13, defect 9. The
// sample customer's unsubscribe, preferences and NPS links in a preview were
// placeholders that answered 400 and 404.
func TestPreviewLinksLeadToPagesThatSayTheyArePreviews(t *testing.T) {
	b := setupUI(t, uiCampaigns)
	href := regexp.MustCompile(`href="([^"]+)"`)
	var links []string
	for _, step := range []string{"/campaigns/onboarding/welcome/html", "/campaigns/nps/survey/html"} {
		resp, body := b.get(t, step, basicAuth)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", step, resp.StatusCode)
		}
		for _, m := range href.FindAllStringSubmatch(body, -1) {
			if u := html.UnescapeString(m[1]); strings.HasPrefix(u, b.ts.URL+"/") {
				links = append(links, strings.TrimPrefix(u, b.ts.URL))
			}
		}
	}
	if len(links) < 3 {
		t.Fatalf("the previews link to %q; want at least unsubscribe, preferences and an NPS score", links)
	}
	for _, l := range links {
		// A click in the preview's iframe sends no credentials.
		resp, body := b.get(t, l, noAuth)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "preview") {
			t.Errorf("%s: %d, want 200 and a page that says it is a preview", l, resp.StatusCode)
		}
	}
}

// TestABVariantPreview: a step with A/B variants shows a tab per variant with
// its share; ?variant=b previews variant b; a stored customer's preview shows
// the variant the worker sends them.
func TestABVariantPreview(t *testing.T) {
	b := setupUI(t, filepath.Join("..", "campaigns"))
	const own, varB = "Your first project, in ten minutes", "Your first project, already half done"
	_, body := b.get(t, "/campaigns/onboarding/first-project", basicAuth)
	wantContains(t, "the step's own content", body, own, `id="ab-variants"`, `class="current">a (50%)<`, `variant=b`)
	_, body = b.get(t, "/campaigns/onboarding/first-project?variant=b", basicAuth)
	wantContains(t, "variant b", body, varB, `class="current">b (50%)<`)
	st := b.applier.Engine.Set().Step("onboarding/first-project")
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5", "c6"} {
		b.signUp(t, &ingest.Record{ID: id, Email: id + "@example.org", FirstName: "Kim"})
		want := own
		if lifecycle.AssignVariant(id, st) == "b" {
			want = varB
		}
		_, body = b.get(t, "/campaigns/onboarding/first-project?customer="+id, basicAuth)
		wantContains(t, "preview for "+id, body, want)
	}
}

// TestCampaignPagesShowBroadcastsHoldoutsAndVariants: the campaign list says
// when a broadcast goes out; its page names the holdout; a step's A/B
// variants show with their share.
func TestCampaignPagesShowBroadcastsHoldoutsAndVariants(t *testing.T) {
	b := setupUI(t, filepath.Join("..", "campaigns"))
	_, body := b.get(t, "/campaigns", basicAuth)
	wantContains(t, "/campaigns", body, "broadcast at 2027-01-12 09:00 local", "entering stage onboarding")
	_, body = b.get(t, "/campaigns/planning-templates", basicAuth)
	wantContains(t, "the broadcast's page", body, "broadcast at 2027-01-12 09:00 local", "10% of the customers who would enrol are kept as a control group")
	_, body = b.get(t, "/campaigns/onboarding", basicAuth)
	wantContains(t, "onboarding's page", body, "variant b · 50%")
}
