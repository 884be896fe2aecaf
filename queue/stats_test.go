package queue

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSendsAreCountedByCampaignStepAndResult(t *testing.T) {
	b := setup(t)
	b.smtp.FailNext(&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "try again later"})
	b.signUp(t, "c1", "Ada")
	b.run(t)
	b.advance(t, time.Minute) // the retry goes through
	counts, err := NewStats(b.rdb, b.prefix).Read(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(counts.Sends, func(a, b SendCount) int { return strings.Compare(a.Result, b.Result) })
	want := []SendCount{
		{Campaign: "onboarding", Step: "welcome", Result: ResultRetry, Count: 1},
		{Campaign: "onboarding", Step: "welcome", Result: ResultSent, Count: 1},
	}
	if !slices.Equal(counts.Sends, want) {
		t.Errorf("sends = %+v, want %+v", counts.Sends, want)
	}
	if got := counts.SMTP; len(got) != 1 || got[SMTPTemporary] != 1 {
		t.Errorf("SMTP errors = %v, want one temporary", got)
	}
}
