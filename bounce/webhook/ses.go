package webhook

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/retainmail/retain/bounce"
)

// snsHost is the rule for SigningCertURL and SubscribeURL hosts, as AWS's
// own message validators apply it.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?$`)

// maxCerts bounds the certificate cache; SNS signs with a handful of
// certificates, one per region and rotation.
const maxCerts = 32

type sesProvider struct {
	topics   map[string]bool // nil accepts every topic
	client   *http.Client
	certHost func(string) bool
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	certs map[string]*x509.Certificate // by SigningCertURL
}

func newSESProvider(cfg SESConfig, now func() time.Time, log *slog.Logger) *sesProvider {
	p := &sesProvider{now: now, log: log, certHost: cfg.CertHost, certs: map[string]*x509.Certificate{}}
	if len(cfg.Topics) > 0 {
		p.topics = map[string]bool{}
		for _, t := range cfg.Topics {
			p.topics[t] = true
		}
	}
	if p.certHost == nil {
		p.certHost = snsHost.MatchString
	}
	client := http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		client = *cfg.HTTPClient
	}
	// A redirect could lead off the SNS host the URL was checked against.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p.client = &client
	return p
}

// snsMessage is the JSON body SNS posts to an HTTP(S) subscription.
type snsMessage struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject"`
	Message          string  `json:"Message"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
	SubscribeURL     string  `json:"SubscribeURL"`
}

func (p *sesProvider) read(r *http.Request, body []byte) (delivery, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return delivery{}, refuse(http.StatusBadRequest, "not an SNS message: %v", err)
	}
	switch m.Type {
	case "Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation":
	default:
		return delivery{}, refuse(http.StatusBadRequest, "not an SNS message: Type %q", m.Type)
	}
	if m.Signature == "" || m.SigningCertURL == "" {
		return delivery{}, refuse(http.StatusUnauthorized, "SNS message without a signature")
	}
	if p.topics != nil && !p.topics[m.TopicArn] {
		return delivery{}, refuse(http.StatusForbidden, "SNS topic %q is not one retain accepts (RETAIN_WEBHOOK_SES_TOPICS)", m.TopicArn)
	}
	if err := p.verify(r.Context(), &m); err != nil {
		return delivery{}, err
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		return p.confirm(r.Context(), &m)
	case "UnsubscribeConfirmation":
		// Re-subscribing is the operator's call, made in the AWS console.
		p.log.Info("SNS subscription ended", "topic", m.TopicArn)
		return delivery{note: "unsubscribe noted"}, nil
	}
	return p.notification(&m), nil
}

// stringToSign is the canonical form SNS signs: name and value lines, in
// byte order of the names, of the fields the message type defines.
func (m *snsMessage) stringToSign() string {
	var b strings.Builder
	add := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('\n')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == "Notification" {
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
	} else {
		add("SubscribeURL", m.SubscribeURL)
	}
	add("Timestamp", m.Timestamp)
	if m.Type != "Notification" {
		add("Token", m.Token)
	}
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	return b.String()
}

// verify checks m's signature with the certificate at its SigningCertURL,
// which must be an https URL on an SNS host.
func (p *sesProvider) verify(ctx context.Context, m *snsMessage) error {
	if !p.allowed(m.SigningCertURL) {
		return refuse(http.StatusForbidden, "SigningCertURL %q is not an https URL on an SNS host", m.SigningCertURL)
	}
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return refuse(http.StatusForbidden, "SNS SignatureVersion %q is not 1 or 2", m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return refuse(http.StatusForbidden, "SNS signature is not base64")
	}
	cert, err := p.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	if now := p.now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return refuse(http.StatusForbidden, "the SNS signing certificate at %s is not valid now", m.SigningCertURL)
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return refuse(http.StatusForbidden, "the SNS signing certificate at %s has no RSA key", m.SigningCertURL)
	}
	var digest []byte
	if hash == crypto.SHA1 {
		d := sha1.Sum([]byte(m.stringToSign()))
		digest = d[:]
	} else {
		d := sha256.Sum256([]byte(m.stringToSign()))
		digest = d[:]
	}
	if err := rsa.VerifyPKCS1v15(key, hash, digest, sig); err != nil {
		return refuse(http.StatusForbidden, "SNS signature does not match the message")
	}
	return nil
}

// allowed reports whether raw is an https URL on a host SNS signs from.
func (p *sesProvider) allowed(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.User == nil && p.certHost(u.Hostname())
}

// cert returns the certificate at rawURL, downloading it the first time.
func (p *sesProvider) cert(ctx context.Context, rawURL string) (*x509.Certificate, error) {
	p.mu.Lock()
	c := p.certs[rawURL]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := p.fetchCert(ctx, rawURL)
	if err != nil {
		// A 5xx: SNS delivers again, and the download may work then.
		return nil, refuse(http.StatusBadGateway, "could not get the SNS signing certificate: %v", err)
	}
	p.mu.Lock()
	if len(p.certs) >= maxCerts {
		clear(p.certs)
	}
	p.certs[rawURL] = c
	p.mu.Unlock()
	return c, nil
}

func (p *sesProvider) fetchCert(ctx context.Context, rawURL string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("GET %s: not a PEM certificate", rawURL)
	}
	return x509.ParseCertificate(block.Bytes)
}

// confirm visits the SubscribeURL of a verified SubscriptionConfirmation,
// which is how an HTTPS subscription starts.
func (p *sesProvider) confirm(ctx context.Context, m *snsMessage) (delivery, error) {
	if !p.allowed(m.SubscribeURL) {
		return delivery{}, refuse(http.StatusForbidden, "SubscribeURL %q is not an https URL on an SNS host", m.SubscribeURL)
	}
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.SubscribeURL, nil)
		if err != nil {
			return err
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}()
	if err != nil {
		return delivery{}, refuse(http.StatusBadGateway, "could not confirm the SNS subscription to %s: %v", m.TopicArn, err)
	}
	p.log.Info("SNS subscription confirmed", "topic", m.TopicArn)
	return delivery{note: "subscription confirmed"}, nil
}

// sesEvent is an SES notification (notificationType) or an event published
// through a configuration set (eventType); both carry the same objects.
type sesEvent struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
		Timestamp  string `json:"timestamp"`
		FeedbackID string `json:"feedbackId"`
	} `json:"bounce"`
	Complaint *struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		Timestamp             string `json:"timestamp"`
		FeedbackID            string `json:"feedbackId"`
	} `json:"complaint"`
	Mail struct {
		MessageID string `json:"messageId"`
		Headers   []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
}

// notification reads the SES event in a verified Notification. Anything
// else published to the topic is ignored: it is signed, so refusing it would
// only make SNS deliver it again.
func (p *sesProvider) notification(m *snsMessage) delivery {
	var ev sesEvent
	if err := json.Unmarshal([]byte(m.Message), &ev); err != nil {
		p.log.Info("SNS notification ignored: not an SES event", "topic", m.TopicArn, "message_id", m.MessageID)
		return delivery{ignored: 1}
	}
	typ := ev.NotificationType
	if typ == "" {
		typ = ev.EventType
	}
	msgID := ev.originalMessageID()
	var reports []bounce.Report
	switch {
	case typ == "Bounce" && ev.Bounce != nil:
		b := ev.Bounce
		kind := bounce.Temporary // Transient, and Undetermined: SES could not tell
		if b.BounceType == "Permanent" {
			kind = bounce.Permanent
		}
		for _, rcpt := range b.BouncedRecipients {
			reports = append(reports, bounce.Report{
				Kind:       kind,
				Recipient:  strings.TrimSpace(rcpt.EmailAddress),
				MessageID:  msgID,
				Status:     enhancedStatus(rcpt.Status, rcpt.DiagnosticCode),
				Diagnostic: rcpt.DiagnosticCode,
				Source:     ses,
				ID:         cmp.Or(b.FeedbackID, m.MessageID),
				At:         parseTime(b.Timestamp),
			})
		}
	case typ == "Complaint" && ev.Complaint != nil:
		c := ev.Complaint
		for _, rcpt := range c.ComplainedRecipients {
			reports = append(reports, bounce.Report{
				Kind:       bounce.Complaint,
				Recipient:  strings.TrimSpace(rcpt.EmailAddress),
				MessageID:  msgID,
				Diagnostic: c.ComplaintFeedbackType,
				Source:     ses,
				ID:         cmp.Or(c.FeedbackID, m.MessageID),
				At:         parseTime(c.Timestamp),
			})
		}
	default:
		return delivery{ignored: 1}
	}
	// One notification may name several recipients under one feedback ID;
	// each report needs its own so that none is taken for a duplicate.
	if len(reports) > 1 {
		for i := range reports {
			reports[i].ID += "/" + reports[i].Recipient
		}
	}
	return delivery{reports: reports}
}

// originalMessageID returns the Message-ID header of the email as retain
// sent it, when SES was set to include the original headers. SES's own
// mail.messageId is not it, and a header equal to it is one SES made up.
func (ev *sesEvent) originalMessageID() string {
	id := ""
	for _, h := range ev.Mail.Headers {
		if strings.EqualFold(h.Name, "Message-ID") {
			id = h.Value
			break
		}
	}
	if id == "" {
		id = ev.Mail.CommonHeaders.MessageID
	}
	id = bareMessageID(id)
	if own := ev.Mail.MessageID; own != "" && (id == own || strings.HasPrefix(id, own+"@")) {
		return ""
	}
	return id
}
