// Package webhook serves the event webhooks of the relay providers retain
// sends through — Amazon SES (through SNS), SendGrid, Postmark and Mailgun —
// and turns their bounce and complaint events into bounce.Reports for a
// bounce.Sink.
//
// It owns checking that a request comes from the provider (SNS message
// signatures, SendGrid's ECDSA signature, Postmark's Basic auth, Mailgun's
// HMAC with a replay check) and reading each provider's payload. It does not
// decide what a report does to a customer (package bounce does), nor read
// the environment itself: FromEnv takes a getenv function, and cmd/retain
// mounts Handler on retain web.
//
//	cfg, err := webhook.FromEnv(os.Getenv)
//	if err != nil {
//		return err
//	}
//	mux.Handle("/webhooks/", webhook.Handler(cfg, sink))
//
// Operators configure the providers as docs/webhooks.md says.
package webhook
