package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/mailer"
)

// withWelcomeVariant writes A/B variant b of the welcome, at split percent,
// into the campaigns folder dir and deploys it.
func withWelcomeVariant(t *testing.T, b *testBundle, dir string, split int) {
	t.Helper()
	src := fmt.Sprintf("---\nsubject: Welcome aboard, {{ .Customer.FirstName }}\nsplit: %d\n---\nHi {{ .Customer.FirstName }}.\n", split)
	if err := os.WriteFile(filepath.Join(dir, "onboarding", "01-welcome.b.md"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	b.redeploy(t, dir)
}

func TestABVariantSendsEachCustomerTheSubjectOfTheirVariant(t *testing.T) {
	b := setup(t)
	withWelcomeVariant(t, b, copyCampaigns(t), 50)
	st := b.applier.Engine.Set().Step("onboarding/welcome")
	want := map[string]string{}
	count := map[string]int{}
	for i := range 40 {
		id := fmt.Sprintf("c%d", i)
		b.signUp(t, id, "Ada")
		want[id] = lifecycle.AssignVariant(id, st)
		count[want[id]]++
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Fatalf("variants of 40 customers at split 50: %v; want both", count)
	}
	b.run(t)
	subjects := map[string]string{"a": "Welcome, Ada", "b": "Welcome aboard, Ada"}
	for id, v := range want {
		got := receivedBy(b, id+"@example.org")
		if len(got) != 1 || got[0].subject != subjects[v] {
			t.Errorf("%s (variant %s) got %v, want one email %q", id, v, got, subjects[v])
			continue
		}
		// One Message-ID per step, whatever the variant.
		if mid := got[0].messageID; mid != "<"+mailer.MessageID("onboarding/welcome", id, 1, "acme.example")+">" {
			t.Errorf("%s: Message-ID %s", id, mid)
		}
		c, err := b.store.Customer(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Enrollments["onboarding"].AB["welcome"]; got != v {
			t.Errorf("%s: enrollment records variant %q, want %q", id, got, v)
		}
	}
}

// TestABVariantRetrySendsTheRecordedVariant fails a send of variant b with a
// 421 and lowers the split so that a new assignment would give variant a: the
// retry still sends b, the variant recorded when the step was first decided.
func TestABVariantRetrySendsTheRecordedVariant(t *testing.T) {
	b := setup(t)
	dir := copyCampaigns(t)
	withWelcomeVariant(t, b, dir, 50)
	st := b.applier.Engine.Set().Step("onboarding/welcome")
	id := ""
	for i := 0; id == ""; i++ {
		c := fmt.Sprintf("r%d", i)
		if lifecycle.AssignVariant(c, st) == "b" {
			id = c
		}
	}
	b.smtp.FailNext(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "try again later"})
	b.signUp(t, id, "Ada")
	b.run(t)
	if n := len(b.smtp.Messages()); n != 0 {
		t.Fatalf("%d emails arrived through a 421", n)
	}
	c, _ := b.store.Customer(b.ctx, id)
	if enr := c.Enrollments["onboarding"]; enr.Attempts != 1 || enr.AB["welcome"] != "b" {
		t.Fatalf("after the 421: attempts %d, variants %v; want 1 and b recorded", enr.Attempts, enr.AB)
	}

	// Split 1: the customer's bucket no longer falls in b for a new assignment.
	withWelcomeVariant(t, b, dir, 1)
	if v := lifecycle.AssignVariant(id, b.applier.Engine.Set().Step("onboarding/welcome")); v != "a" {
		t.Fatalf("test needs a customer that split 1 assigns a, got %s", v)
	}
	b.advance(t, time.Hour)
	got := receivedBy(b, id+"@example.org")
	if len(got) != 1 || got[0].subject != "Welcome aboard, Ada" {
		t.Fatalf("after the retry: %v, want variant b's welcome once", got)
	}
	if want := "<" + mailer.MessageID("onboarding/welcome", id, 1, "acme.example") + ">"; got[0].messageID != want {
		t.Errorf("Message-ID = %s, want %s", got[0].messageID, want)
	}
	c, _ = b.store.Customer(b.ctx, id)
	if v := c.Enrollments["onboarding"].AB["welcome"]; v != "b" {
		t.Errorf("enrollment records variant %q after the retry, want b", v)
	}
}

type received struct{ subject, messageID string }

// receivedBy is the subject and Message-ID of every email to an address.
func receivedBy(b *testBundle, to string) []received {
	var out []received
	for _, m := range b.smtp.Messages() {
		if len(m.To) == 1 && m.To[0] == to {
			out = append(out, received{subject(m), m.Header.Get("Message-ID")})
		}
	}
	return out
}
