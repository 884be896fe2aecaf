package render

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/retainmail/retain/campaign"
)

// projectFS is a campaigns folder: lifecycle.yaml, and a shop campaign
// triggered by an order with one step of body.
func projectFS(lifecycle, campaignMD, body string) fstest.MapFS {
	return fstest.MapFS{
		"lifecycle.yaml":       {Data: []byte(lifecycle)},
		"shop/campaign.md":     {Data: []byte(campaignMD)},
		"shop/01-thank-you.md": {Data: []byte(body)},
	}
}

const shopLifecycle = `stages: [lead, customer]
links: {Shop: "https://shop.example.com/?ref=mail"}
utm: {source: retain, medium: email}
transitions:
  - {on: order_placed, to: customer}
`

const shopCampaign = `---
name: Shop
trigger: {event: order_placed}
event_data: {product: string, total: float}
---
`

// TestStepLinksAndUTM: a step's own link is .Links.name beside
// lifecycle.yaml's; with utm: both carry utm_source, utm_medium, the
// campaign and the step, computed at Compile; a link with utm_ parameters
// of its own and a mailto: link are left as they are.
func TestStepLinksAndUTM(t *testing.T) {
	fsys := projectFS(shopLifecycle, shopCampaign, `---
subject: Thanks
links: {guide: "https://help.example.com/care?lang=en", tagged: "https://example.com/x?utm_source=partner"}
---
Read [the care guide]({{ .Links.guide }}), visit [the shop]({{ .Links.Shop }}), or [this]({{ .Links.tagged }}).
`)
	if probs := lint(t, fsys); len(probs) > 0 {
		t.Fatalf("problems: %v", probs)
	}
	set, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(set, filepath.Join("..", "templates"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.Render("shop/thank-you", SampleData(set, "https://retain.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`href="https://help.example.com/care?lang=en&amp;utm_campaign=shop&amp;utm_content=thank-you&amp;utm_medium=email&amp;utm_source=retain"`,
		`href="https://shop.example.com/?ref=mail&amp;utm_campaign=shop&amp;utm_content=thank-you&amp;utm_medium=email&amp;utm_source=retain"`,
		`href="https://example.com/x?utm_source=partner"`,
	} {
		if !strings.Contains(e.HTML, want) {
			t.Errorf("HTML lacks %s:\n%s", want, e.HTML)
		}
	}
	if !strings.Contains(e.Text, "(https://help.example.com/care?lang=en&utm_campaign=shop&utm_content=thank-you&utm_medium=email&utm_source=retain)") {
		t.Errorf("text part:\n%s", e.Text)
	}
}

// TestLintEventDataAndStepLinks: every new mistake is a problem at its
// file:line:col.
func TestLintEventDataAndStepLinks(t *testing.T) {
	got := lint(t, projectFS(shopLifecycle, shopCampaign, `---
subject: "{{ .Event.Data.prodcut }}"
links: {Shop: "https://elsewhere.example.com/", Unsubscribe: "https://x.example.com/", guide: "ftp://files.example.com/"}
---
{{ .Links.gide }} {{ .Event.Data.total | printf "%.2f" }} {{ .Event.Name }} {{ .Event.At.Format "2006" }}
`))
	want := []string{
		`campaigns/shop/01-thank-you.md:2:25: unknown event data field "prodcut" in .Event.Data (did you mean "product"?)`,
		`campaigns/shop/01-thank-you.md:3:9: link "Shop" is declared in lifecycle.yaml already: give this step's link another name`,
		`campaigns/shop/01-thank-you.md:3:49: link "Unsubscribe" is retain's own (.Links.Unsubscribe): give this step's link another name`,
		`campaigns/shop/01-thank-you.md:3:95: links.guide must be an http or https URL, found "ftp://files.example.com/"`,
		`campaigns/shop/01-thank-you.md:5:10: unknown link "gide" in .Links`,
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem %s\ngot:\n%s", w, strings.Join(got, "\n"))
		}
	}
}
