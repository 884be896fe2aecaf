// Package mailer turns a rendered email into the RFC 5322 message retain sends: the
// headers (From, To, Subject, Date, a deterministic Message-ID, List-Unsubscribe with
// RFC 8058 one-click) and a multipart/alternative body with a text and an HTML part.
//
// It builds messages with go-mail so that what `retain preview --format eml` prints is
// byte for byte the message the worker hands to the SMTP relay. It does not render
// templates (package render) or decide whether to send (the worker).
//
// It also sends them: ParseURL reads SMTP_URL into a Config, and a Pool keeps a few
// SMTP connections open and reuses them across messages. Every failed Send is a
// *SendError with a Class the worker acts on: Temporary (retry with backoff),
// Permanent (do not retry), BadAddress (do not retry; suppress the address) and
// Unknown (the reply to the final "." was lost: the message may have been delivered,
// so record it as sent-unknown rather than retrying).
//
//	cfg, err := mailer.ParseURL(os.Getenv("SMTP_URL"))
//	if err != nil {
//		return err
//	}
//	pool := mailer.NewPool(cfg)
//	defer pool.Close()
//	err = pool.Send(ctx, msg)
//	switch mailer.Classify(err) { … }
package mailer
