package webhook

import (
	"os"
	"strings"
	"testing"
)

// TestDocsNameEveryVariableAndPostmarkType checks that docs/webhooks.md
// keeps up with the code: every variable FromEnv reads, and every Postmark
// bounce type that makes a report, in the row of its kind.
func TestDocsNameEveryVariableAndPostmarkType(t *testing.T) {
	b, err := os.ReadFile("../../docs/webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, v := range []string{envSESTopics, envSendGridKey, envPostmarkAuth, envMailgunKey} {
		if !strings.Contains(doc, "`"+v+"`") {
			t.Errorf("docs/webhooks.md does not mention %s", v)
		}
	}
	words := map[string]string{"bounce": "permanent bounce", "soft_bounce": "temporary failure", "complaint": "complaint"}
	for typ, kind := range postmarkBounceKinds {
		found := false
		for line := range strings.Lines(doc) {
			if strings.HasPrefix(line, "| `Bounce`") && strings.Contains(line, "`"+typ+"`") && strings.HasSuffix(strings.TrimSpace(line), "| "+words[string(kind)]+" |") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/webhooks.md has no Postmark row mapping `%s` to %s", typ, words[string(kind)])
		}
	}
}
