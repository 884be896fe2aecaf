package queue

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
)

// TestStepsShowTheEventThatStartedThem: an order enrols a customer in the
// example second-order campaign (event_data: {product, order_id}); the
// thank-you email that arrives over SMTP the next day shows the order's
// product, escaped in HTML; the enrollment keeps only the declared fields,
// within the 400 B an enrollment may take.
func TestStepsShowTheEventThatStartedThem(t *testing.T) {
	b := setup(t)
	set := b.useExamples(t, slog.New(slog.DiscardHandler))
	rec := &ingest.Record{ID: "lucas", Email: "lucas@example.org", FirstName: "Lucas", Locale: "en",
		Events: []lifecycle.Event{{Name: "order_placed", At: b.clock.Now(),
			Data: map[string]any{"product": "Desk lamp <Deluxe>", "order_id": "o-1001", "note": "gift wrap, please"}}}}
	if err := ingest.Check(rec, set.Lifecycle); err != nil {
		t.Fatal(err)
	}
	if _, err := b.applier.Record(b.ctx, rec); err != nil {
		t.Fatal(err)
	}
	c, err := b.store.Customer(b.ctx, "lucas")
	if err != nil {
		t.Fatal(err)
	}
	enr := c.Enrollments["second-order"]
	if enr == nil || enr.Event == nil || enr.Event.Name != "order_placed" || enr.Event.Data["product"] != "Desk lamp <Deluxe>" || enr.Event.Data["order_id"] != "o-1001" {
		t.Fatalf("the enrollment keeps %+v, want the order's product and ID", enr)
	}
	if _, ok := enr.Event.Data["note"]; ok {
		t.Error("the enrollment keeps a field the campaign does not declare")
	}
	raw, _ := json.Marshal(enr)
	t.Logf("second-order enrollment: %d bytes of JSON: %s", len(raw), raw)
	if len(raw) > 400 {
		t.Errorf("an enrollment with its event is %d bytes, over the 400 B budget", len(raw))
	}

	b.clock.Advance(enr.Due.Sub(b.clock.Now()))
	b.run(t)
	msgs := b.smtp.Wait(1, 5*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want the thank-you", len(msgs))
	}
	body := string(msgs[0].Raw)
	if !strings.Contains(body, "Your order of Desk lamp &lt;Deluxe&gt; was your first") || !strings.Contains(body, "Your order of Desk lamp <Deluxe> was your first") {
		t.Errorf("the thank-you does not show the order's product, escaped in HTML and as is in text:\n%s", body)
	}
}
