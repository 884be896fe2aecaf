package render

import (
	"errors"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/campaign"
)

// lint loads fsys as retain lint does, campaign.LoadFS then Compile, and returns
// every problem.
func lint(t *testing.T, fsys fstest.MapFS) []string {
	t.Helper()
	var probs campaign.Problems
	set, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil && !errors.As(err, &probs) {
		t.Fatal(err)
	}
	probs = append(campaign.Problems(nil), probs...)
	var rprobs campaign.Problems
	if _, err := Compile(set, filepath.Join("..", "templates")); err != nil && !errors.As(err, &rprobs) {
		t.Fatal(err)
	}
	var out []string
	for _, p := range append(probs, rprobs...).Sort() {
		out = append(out, p.String())
	}
	return out
}

// TestStepWithBrokenYAMLHasNoEmptySubject: issue 13, defect 9. A YAML error
// in a step's front matter was followed by "empty subject": the subject is
// there, only unreadable until the YAML is fixed.
func TestStepWithBrokenYAMLHasNoEmptySubject(t *testing.T) {
	got := lint(t, fstest.MapFS{
		"lifecycle.yaml":          {Data: []byte("stages: [lead, onboarding]\ntransitions:\n  - {on: signed_up, to: onboarding}\n")},
		"onboarding/campaign.md":  {Data: []byte("---\nname: Onboarding\ntrigger: {stage: onboarding}\n---\n")},
		"onboarding/01-hello.md":  {Data: []byte("---\nsubject: Hello\ndelay: [3d\n---\nHi.\n")},
		"onboarding/02-second.md": {Data: []byte("---\nsubject: ''\n---\nHi.\n")},
	})
	want := []string{
		`campaigns/onboarding/01-hello.md:2:1: invalid YAML: did not find expected ',' or ']'`,
		`campaigns/onboarding/02-second.md:2:11: empty subject: every email needs one`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
