// Package mailer turns a rendered email into the RFC 5322 message retain sends: the
// headers (From, To, Subject, Date, a deterministic Message-ID, List-Unsubscribe with
// RFC 8058 one-click) and a multipart/alternative body with a text and an HTML part.
//
// It builds messages with go-mail so that what `retain preview --format eml` prints
// (Message.Build) has the headers and content the worker sends. It does not render
// templates (package render) or decide whether to send (the worker).
//
// It also sends them: ParseURL reads SMTP_URL into a Config, and a Pool keeps a few
// SMTP connections open and reuses them across messages. Every failed Send is a
// *SendError with a Class the worker acts on: Temporary (retry with backoff),
// Permanent (do not retry), BadAddress (do not retry; suppress the address) and
// Unknown (the reply to the final "." was lost: the message may have been delivered,
// so record it as sent-unknown rather than retrying).
//
// Each body part gets its own Content-Transfer-Encoding, chosen per message once the
// connection's EHLO is known (Message.BuildFor): to a relay that announced 8BITMIME,
// a part whose lines fit in 998 octets, with no NUL and no bare CR, goes unencoded
// as 8bit; anything else is quoted-printable, which costs CPU and bytes (goldmark
// writes a paragraph of HTML as one line, so HTML parts can need it). The preview is
// the quoted-printable form that any relay accepts.
//
// For DATA the pool keeps go-mail's smtp.Client for the session (and, to a relay
// without PIPELINING, for MAIL FROM and RCPT TO), but not its DataCloser (net/textproto's DotWriter, a byte at a time through a
// 4 KB buffer): it writes the MIME with Msg.WriteTo into a pooled buffer, dot-encodes
// it a line at a time (appendDotStuffed, byte for byte what DotWriter sends), and
// sends DATA, then the message with its final "." in one write, through
// smtp.Client.Text. go-mail exports Text, the session's *textproto.Conn, as net/smtp
// does, so that clients can add extensions, and keeps no state on it between
// commands.
//
// With keys in Config.DKIM the pool signs each message with DKIM (go-msgauth,
// relaxed/relaxed, the From domain's keys or its nearest parent's; see DKIMKey):
// the message as go-mail wrote it is signed, and the DKIM-Signature fields go ahead
// of it in DATA, before the dot encoding, which the relay undoes. Without keys (the
// default) nothing is signed and the relay signs. DKIMKey.CheckRecord compares a
// key with its published DNS record.
//
// To a relay that announces PIPELINING (RFC 2920) the pool writes MAIL FROM, RCPT TO
// and DATA at once, byte for byte the commands go-mail's Mail and Rcpt send, then
// reads the three replies: two round trips per message instead of four, and one
// write instead of three. It reads every reply even after a refusal, and reports a
// failure exactly as the exchange a command at a time does (same Stage, Code and
// Class, same RSET and retry); only a relay that answers DATA with 354 after
// refusing MAIL or RCPT gets its connection closed instead of reset, since it then
// waits for a message that must not be sent.
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
