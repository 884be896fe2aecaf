// Package mailer turns a rendered email into the RFC 5322 message retain sends: the
// headers (From, To, Subject, Date, a deterministic Message-ID, List-Unsubscribe with
// RFC 8058 one-click) and a multipart/alternative body with a text and an HTML part.
//
// It builds messages with go-mail so that what `retain preview --format eml` prints is
// byte for byte the message the worker hands to the SMTP relay. It does not render
// templates (package render) or decide whether to send (the worker).
package mailer
