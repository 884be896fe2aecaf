package render

import (
	"strings"
	"testing"
)

// BenchmarkRenderPartialAndHelpers is the per-customer render time of a
// ~300-word step that includes a partial (the signature) and a paragraph
// with three formatting helpers (date, money, plural), against the same step
// with the signature written out and the paragraph printing plain fields:
// what the template features cost a send.
func BenchmarkRenderPartialAndHelpers(b *testing.B) {
	for _, name := range []string{"plain", "helpers"} {
		b.Run(name, func(b *testing.B) {
			src := strings.Replace(benchStep, "\n## Not sure", "\n"+benchFormatted[name]+"\n\n## Not sure", 1)
			if name == "helpers" {
				src = strings.Replace(src, "The {{ .Sender.Name }} team\n", "{{ template \"signature\" . }}\n", 1)
			}
			r, d := benchPartialSetup(b, src)
			d.Customer.Locale, d.Customer.Timezone = "nl", "Europe/Amsterdam"
			d.Customer.Attributes["balance"] = 1234.5
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Render("onboarding/welcome", d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
