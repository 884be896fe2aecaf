package store

import (
	"context"
	"fmt"

	"github.com/retainmail/retain/lifecycle"
)

// The consent log ({s}consent:{id}) is the customer's full record of
// subscription changes, for GDPR (who consented or withdrew, when, how): every
// event of a consent kind (IsConsent) that an Update writes is also appended
// there, in the same MULTI/EXEC as the change itself, so the log and the
// customer's state never disagree. Unlike the recent events it is never
// trimmed; it goes with the customer on erasure (Delete). Subscription changes
// are rare, so it stays small: about 150 bytes an entry.

// Consent event names: the events that change, or record a change of, a
// customer's subscription. Their data says how (a "how" or "source" key) and
// what changed.
const (
	// EventUnsubscribed: the customer unsubscribed from everything, or from
	// the topic in data "topic" (the link pages: data "how").
	EventUnsubscribed = "unsubscribed"
	// EventPreferencesChanged: the preference page saved the customer's
	// choice (data "how", "unsubscribed", "opted_out": the topics opted out of
	// after the change).
	EventPreferencesChanged = "preferences_changed"
	// EventSubscriptionChanged: the product synced the customer's choice
	// (PUT /api/customers/{id}/subscription; data "source", and of
	// "unsubscribed" and "topics" (topic → subscribed) what changed).
	EventSubscriptionChanged = "subscription_changed"
	// EventComplained: the customer marked an email as spam (package bounce;
	// data "source", "campaign", "step").
	EventComplained = "complained"
)

// IsConsent reports whether an event of that name belongs in the consent log:
// unsubscribed, preferences_changed, subscription_changed or complained.
func IsConsent(name string) bool {
	switch name {
	case EventUnsubscribed, EventPreferencesChanged, EventSubscriptionChanged, EventComplained:
		return true
	}
	return false
}

func (s *Store) consentKey(id string) string { return s.cp(id) + "consent:" + id }

// ConsentHistory returns the customer's consent log, oldest first: every
// consent event (IsConsent) Update wrote for it, with its time and data. It is
// empty, not an error, for a customer without one, or unknown.
func (s *Store) ConsentHistory(ctx context.Context, id string) ([]lifecycle.Event, error) {
	raw, err := s.rdb.LRange(ctx, s.consentKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: consent history %s: %w", id, err)
	}
	out := make([]lifecycle.Event, len(raw))
	for i, r := range raw {
		if out[i], err = decodeEvent([]byte(r)); err != nil {
			return nil, fmt.Errorf("store: decode consent history %s: %w", id, err)
		}
	}
	return out, nil
}
