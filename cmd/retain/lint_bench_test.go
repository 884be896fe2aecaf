package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/retainmail/retain/campaign"
)

// writeBenchProject writes a project with campaigns×steps step files, each a
// realistic ~150-word email with placeholders, a link and a conditional block, and
// the repository's layouts.
func writeBenchProject(b *testing.B, campaigns, steps int) dirs {
	b.Helper()
	root := b.TempDir()
	d := dirs{campaigns: filepath.Join(root, "campaigns"), templates: filepath.Join(root, "templates")}
	write := func(path, content string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(filepath.Join(d.campaigns, "lifecycle.yaml"), `
links: {Dashboard: "https://app.example.com/"}
attributes: {plan: string, company: string}
counters: {orders: order_placed}
activity: [logged_in]
stages: [lead, onboarding, active]
transitions:
  - {on: signed_up, from: [lead], to: onboarding}
  - {after: 30d, from: [onboarding], to: active}
`)
	for _, name := range []string{"default.html", "default.txt"} {
		src, err := os.ReadFile(filepath.Join("../../templates", name))
		if err != nil {
			b.Fatal(err)
		}
		write(filepath.Join(d.templates, name), string(src))
	}
	para := strings.Repeat("Teams that plan their week on Monday finish more of it by Friday. ", 6)
	for c := range campaigns {
		dir := filepath.Join(d.campaigns, fmt.Sprintf("campaign-%03d", c))
		write(filepath.Join(dir, "campaign.md"), "---\nname: Bench\ntrigger: {stage: onboarding}\naudience: 'customer.plan != \"free\"'\nsend_window: {days: mon-fri, hours: \"09:00-17:00\"}\n---\nA benchmark campaign.\n")
		for s := range steps {
			write(filepath.Join(dir, fmt.Sprintf("%02d-step-%d.md", s+1, s)), fmt.Sprintf(`---
subject: "Tip %d for {{ .Customer.FirstName | default \"you\" }}"
preheader: One small habit
delay: 2d
at: "09:30"
skip_if: customer.orders > 3
---
## Hello {{ .Customer.FirstName }}

%s

{{ if eq .Customer.Attributes.plan "team" }}
Your team at {{ .Customer.Attributes.company }} can share the plan. %s
{{ else }}
Invite a colleague and share the plan. %s
{{ end }}

- Plan on Monday
- Review on Friday
- [Open your dashboard]({{ .Links.Dashboard }})
`, s, para, para[:200], para[:200]))
		}
	}
	return d
}

// BenchmarkLint1000Steps loads and checks a project of 1,000 step files, as
// `retain lint` does: Load is the campaign files alone, Lint adds compiling every
// step and layout. Target: under 1 s for Lint.
func BenchmarkLint1000Steps(b *testing.B) {
	d := writeBenchProject(b, 50, 20)
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := campaign.Load(d.campaigns); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Lint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, probs, err := loadCampaigns(d)
			if err != nil || len(probs) > 0 {
				b.Fatal(err, probs)
			}
		}
	})
}
