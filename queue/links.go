package queue

import (
	"time"

	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/render"
)

// NPSLinkTTL is how long an NPS score link in an email stays valid.
const NPSLinkTTL = 90 * 24 * time.Hour

// SignedLinks is WorkerConfig.Links for links signed by s: a customer's signed
// unsubscribe link, the preference and NPS links (NPS for the customer's
// current round of the campaign, valid NPSLinkTTL from now()) and the fixed
// links of lifecycle.yaml. The preference and NPS links are signed only if the
// email uses them, when it is rendered (render.NewLazyLinks): most steps have
// no NPS question, and eleven tokens per email cost more than the rest of its
// links.
func SignedLinks(s *link.Signer, fixed map[string]string, now func() time.Time) func(c *lifecycle.Customer, campaignID string) render.Links {
	return func(c *lifecycle.Customer, campaignID string) render.Links {
		at := now()
		n := 0 // the survey email's round: an answer counts once per customer and round
		if enr := c.Enrollments[campaignID]; enr != nil {
			n = enr.Number
		}
		return render.NewLazyLinks(s.UnsubscribeURL(c.ID, ""), func() string { return s.PreferencesURL(c.ID) },
			func(score int) string { return s.NPSEnrollmentURL(c.ID, campaignID, n, score, at, NPSLinkTTL) }, fixed)
	}
}
