package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func sendgridKeyBase64(t *testing.T) (string, *ecdsa.PublicKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der), &key.PublicKey
}

func TestFromEnvReadsEveryProvider(t *testing.T) {
	sgKey, pub := sendgridKeyBase64(t)
	cfg, err := FromEnv(env(map[string]string{
		"RETAIN_WEBHOOK_SES_TOPICS":    "arn:aws:sns:us-east-1:123456789012:ses-bounces, arn:aws-cn:sns:cn-north-1:123456789012:ses-complaints",
		"RETAIN_WEBHOOK_SENDGRID_KEY":  sgKey,
		"RETAIN_WEBHOOK_POSTMARK_AUTH": "postmark:pa:ss:word",
		"RETAIN_WEBHOOK_MAILGUN_KEY":   "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Enabled(), []string{"ses", "sendgrid", "postmark", "mailgun"}; !slices.Equal(got, want) {
		t.Errorf("Enabled() = %q, want %q", got, want)
	}
	if want := []string{"arn:aws:sns:us-east-1:123456789012:ses-bounces", "arn:aws-cn:sns:cn-north-1:123456789012:ses-complaints"}; !slices.Equal(cfg.SES.Topics, want) {
		t.Errorf("SES topics %q, want %q", cfg.SES.Topics, want)
	}
	if !cfg.SendGrid.PublicKey.Equal(pub) {
		t.Error("SendGrid key differs from the one given")
	}
	if cfg.Postmark.User != "postmark" || cfg.Postmark.Password != "pa:ss:word" {
		t.Errorf("Postmark credentials %q %q", cfg.Postmark.User, cfg.Postmark.Password)
	}
	if cfg.Mailgun.SigningKey != "key-3ax6xnjp29jd6fds4gc373sgvjxteol0" {
		t.Errorf("Mailgun key %q", cfg.Mailgun.SigningKey)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestFromEnvWithNothingSetTurnsEverythingOff(t *testing.T) {
	cfg, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Enabled(); len(got) != 0 {
		t.Errorf("Enabled() = %q, want none", got)
	}
}

func TestFromEnvStarTakesAnySESTopic(t *testing.T) {
	cfg, err := FromEnv(env(map[string]string{"RETAIN_WEBHOOK_SES_TOPICS": "*"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SES == nil || len(cfg.SES.Topics) != 0 {
		t.Errorf("SES %+v, want on with no topic list", cfg.SES)
	}
}

func TestFromEnvTakesTheSendGridKeyAsPEMToo(t *testing.T) {
	b64, pub := sendgridKeyBase64(t)
	der, _ := base64.StdEncoding.DecodeString(b64)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	cfg, err := FromEnv(env(map[string]string{"RETAIN_WEBHOOK_SENDGRID_KEY": pemKey}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SendGrid.PublicKey.Equal(pub) {
		t.Error("SendGrid key differs from the one given")
	}
}

func TestFromEnvNamesEveryMalformedVariableWithoutItsValue(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	otherCurve := base64.StdEncoding.EncodeToString(der)
	for name, c := range map[string]struct {
		vars   map[string]string
		want   []string // each in the error
		secret string   // never in it
	}{
		"topic that is no ARN": {
			vars: map[string]string{"RETAIN_WEBHOOK_SES_TOPICS": "arn:aws:sns:us-east-1:123456789012:ok,ses-bounces"},
			want: []string{"RETAIN_WEBHOOK_SES_TOPICS", `"ses-bounces"`, "arn:aws:sns:REGION:ACCOUNT:TOPIC"},
		},
		"sendgrid key not base64": {
			vars:   map[string]string{"RETAIN_WEBHOOK_SENDGRID_KEY": "not*base64*at*all"},
			want:   []string{"RETAIN_WEBHOOK_SENDGRID_KEY", "not base64", "ECDSA P-256"},
			secret: "not*base64*at*all",
		},
		"sendgrid key of another kind": {
			vars:   map[string]string{"RETAIN_WEBHOOK_SENDGRID_KEY": otherCurve},
			want:   []string{"RETAIN_WEBHOOK_SENDGRID_KEY", "not an ECDSA P-256 key"},
			secret: otherCurve,
		},
		"postmark without a colon": {
			vars:   map[string]string{"RETAIN_WEBHOOK_POSTMARK_AUTH": "hunter2-password"},
			want:   []string{"RETAIN_WEBHOOK_POSTMARK_AUTH", "user:password"},
			secret: "hunter2-password",
		},
		"postmark without a password": {
			vars:   map[string]string{"RETAIN_WEBHOOK_POSTMARK_AUTH": "postmark:"},
			want:   []string{"RETAIN_WEBHOOK_POSTMARK_AUTH", "user:password"},
			secret: "postmark:",
		},
		"postmark with a line break": {
			vars:   map[string]string{"RETAIN_WEBHOOK_POSTMARK_AUTH": "postmark:hunter2-password\n"},
			want:   []string{"RETAIN_WEBHOOK_POSTMARK_AUTH", "line break"},
			secret: "hunter2-password",
		},
		"mailgun key with a space": {
			vars:   map[string]string{"RETAIN_WEBHOOK_MAILGUN_KEY": "key-3ax6xnjp29jd6 fds4gc373sgvjxteol0"},
			want:   []string{"RETAIN_WEBHOOK_MAILGUN_KEY", "white space"},
			secret: "3ax6xnjp29jd6",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := FromEnv(env(c.vars))
			if err == nil {
				t.Fatalf("no error; config %+v", cfg)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("error %q shows the value", err)
			}
			if got := cfg.Enabled(); len(got) != 0 {
				t.Errorf("a config came back with an error: %q", got)
			}
		})
	}
}

func TestFromEnvReportsAllProblemsAtOnce(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		"RETAIN_WEBHOOK_SES_TOPICS":    "nope",
		"RETAIN_WEBHOOK_POSTMARK_AUTH": "nope",
	}))
	if err == nil || !strings.Contains(err.Error(), "RETAIN_WEBHOOK_SES_TOPICS") || !strings.Contains(err.Error(), "RETAIN_WEBHOOK_POSTMARK_AUTH") {
		t.Errorf("error %v, want both variables named", err)
	}
}
