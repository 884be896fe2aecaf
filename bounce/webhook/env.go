package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// The environment variables FromEnv reads; docs/webhooks.md describes them.
const (
	envSESTopics    = "RETAIN_WEBHOOK_SES_TOPICS"
	envSendGridKey  = "RETAIN_WEBHOOK_SENDGRID_KEY"
	envPostmarkAuth = "RETAIN_WEBHOOK_POSTMARK_AUTH"
	envMailgunKey   = "RETAIN_WEBHOOK_MAILGUN_KEY"
)

// FromEnv reads the RETAIN_WEBHOOK_* variables through getenv:
//
//	RETAIN_WEBHOOK_SES_TOPICS     SNS topic ARNs, comma-separated, or * for any topic
//	RETAIN_WEBHOOK_SENDGRID_KEY   the Signed Event Webhook's verification key (base64)
//	RETAIN_WEBHOOK_POSTMARK_AUTH  user:password, the Basic auth in Postmark's webhook URL
//	RETAIN_WEBHOOK_MAILGUN_KEY    Mailgun's HTTP webhook signing key
//
// A provider whose variable is unset or empty is off. The error names every
// malformed variable and what it should hold, never its value; the Config
// is then zero. Log and Now are left for the caller.
func FromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}

	if v := strings.TrimSpace(getenv(envSESTopics)); v != "" {
		cfg.SES = &SESConfig{}
		if v != "*" {
			for t := range strings.SplitSeq(v, ",") {
				t = strings.TrimSpace(t)
				if !isTopicARN(t) {
					bad(envSESTopics, "%q is not an SNS topic ARN (want arn:aws:sns:REGION:ACCOUNT:TOPIC, comma-separated, or * to accept any topic)", t)
					continue
				}
				cfg.SES.Topics = append(cfg.SES.Topics, t)
			}
		}
	}

	if v := getenv(envSendGridKey); strings.TrimSpace(v) != "" {
		key, err := parseSendGridKey(v)
		if err != nil {
			bad(envSendGridKey, "%v; want the verification key SendGrid shows for the Signed Event Webhook (base64 of an ECDSA P-256 public key)", err)
		}
		cfg.SendGrid = &SendGridConfig{PublicKey: key}
	}

	if v := getenv(envPostmarkAuth); v != "" {
		user, password, ok := strings.Cut(v, ":")
		switch {
		case !ok || user == "" || password == "":
			bad(envPostmarkAuth, "want user:password, the Basic auth credentials in the webhook URL set at Postmark")
		case strings.ContainsAny(v, "\r\n"):
			bad(envPostmarkAuth, "contains a line break; want user:password on one line")
		}
		cfg.Postmark = &PostmarkConfig{User: user, Password: password}
	}

	if v := getenv(envMailgunKey); v != "" {
		if strings.ContainsAny(v, " \t\r\n") {
			bad(envMailgunKey, "contains white space; want the HTTP webhook signing key exactly as Mailgun shows it")
		}
		cfg.Mailgun = &MailgunConfig{SigningKey: v}
	}

	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// isTopicARN reports whether s looks like arn:PARTITION:sns:REGION:ACCOUNT:TOPIC.
func isTopicARN(s string) bool {
	f := strings.Split(s, ":")
	return len(f) == 6 && f[0] == "arn" && strings.HasPrefix(f[1], "aws") && f[2] == "sns" && f[3] != "" && f[4] != "" && f[5] != ""
}
