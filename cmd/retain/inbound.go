package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/retainmail/retain/bounce"
	"github.com/retainmail/retain/link"
	"github.com/retainmail/retain/store"
)

var inboundCmd = &command{
	name:    "inbound",
	summary: "Run the bounce server: read bounces and complaints sent to the Return-Path",
	usage:   "inbound [--addr HOST:PORT] [--tls-cert FILE --tls-key FILE] [--campaigns DIR]",
	help: `retain inbound is an SMTP server for the bounce domain's MX. With
RETAIN_BOUNCE_DOMAIN set, the worker sends each email with its own Return-Path,
bounces+<token>@DOMAIN, where the token (signed with RETAIN_SECRET) names the
customer, campaign and step. Receivers send their bounces (delivery status
notifications, RFC 3464) and feedback-loop complaints (ARF, RFC 5965) there;
retain inbound accepts mail only for valid tokens, reads the reports and
applies lifecycle.yaml's deliverability: policy:

  a permanent failure of the address (5.1.x, 5.2.1)  suppresses it
  a temporary failure, or a permanent one about the  counts; soft_bounces of them
  message (5.7.1 blocked)                           within soft_bounce_window suppress
  a complaint (ARF abuse)                            unsubscribes from everything,
                                                     suppresses the address

Each is an event on the customer and counts in the report per campaign and
step; a campaign whose complaint or bounce rate passes its threshold pauses
(retain campaign resume ID). Mail that is not a report (auto-replies, delay
notices) is accepted and dropped.

DNS: point the bounce domain's MX at this server, e.g.
  bounces.acme.example.  MX 10 inbound.acme.example.
and keep SPF for the bounce domain allowing your relay, since receivers check
SPF against the Return-Path's domain.

Environment (required unless a default is shown):
  RETAIN_BOUNCE_DOMAIN  the bounce domain, the same as the worker's
  RETAIN_SECRET         the worker's secret (checks the tokens)
  RETAIN_INBOUND_ADDR   listen address (default :25; --addr wins)
  REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help worker)`,
	run: runInbound,
}

func runInbound(c *command, e *env, args []string) int {
	fs := c.flags()
	addr := fs.String("addr", "", "listen `HOST:PORT` (default $RETAIN_INBOUND_ADDR, else :25)")
	certFile := fs.String("tls-cert", "", "PEM certificate `FILE` to offer STARTTLS with (with --tls-key)")
	keyFile := fs.String("tls-key", "", "PEM private key `FILE` of --tls-cert")
	maxSize := fs.Int64("max-size", 10<<20, "largest message accepted, in bytes")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	var problems []string
	if len(pos) > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	domain := strings.ToLower(strings.TrimSpace(e.getenv("RETAIN_BOUNCE_DOMAIN")))
	switch {
	case domain == "":
		problems = append(problems, "RETAIN_BOUNCE_DOMAIN is not set: give the bounce domain whose MX is this server, the same as the worker's, e.g. bounces.acme.example")
	case !validDomain(domain):
		problems = append(problems, fmt.Sprintf("RETAIN_BOUNCE_DOMAIN %q is not a domain name such as bounces.acme.example", domain))
	}
	if len(e.getenv("RETAIN_SECRET")) < link.MinSecret {
		problems = append(problems, fmt.Sprintf("RETAIN_SECRET is not set or shorter than %d bytes: give the worker's secret, which signs the Return-Path tokens", link.MinSecret))
	}
	var tlsCfg *tls.Config
	switch {
	case (*certFile == "") != (*keyFile == ""):
		problems = append(problems, "give --tls-cert and --tls-key together")
	case *certFile != "":
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			problems = append(problems, "--tls-cert/--tls-key: "+err.Error())
		} else {
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}
	if *maxSize < 64<<10 {
		problems = append(problems, "--max-size must be at least 65536 bytes")
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "retain inbound: %s\n", p)
		}
		return exitUsage
	}
	listen := cmpOr(*addr, cmpOr(e.getenv("RETAIN_INBOUND_ADDR"), ":25"))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ws, code := openWorkspace(ctx, c, e, *dirFlag)
	if ws == nil {
		return code
	}
	defer ws.close()
	log := slog.New(slog.NewTextHandler(e.stderr, nil))
	if !checkRedis(ctx, c, e, log, ws.rdb) {
		return exitProblems
	}
	tokens := bounce.NewTokens([]byte(e.getenv("RETAIN_SECRET")))
	applier := &bounce.Applier{Store: ws.store, Engine: ws.engine, Tokens: tokens, Log: log}
	srv, err := bounce.NewServer(bounce.ServerConfig{Domain: domain, Tokens: tokens, Sink: applier.Apply, MaxSize: *maxSize, TLS: tlsCfg, Log: log})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain inbound: %v\n", err)
		return exitUsage
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain inbound: %v (port 25 needs root or CAP_NET_BIND_SERVICE; --addr picks another)\n", err)
		return exitProblems
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.Info("inbound started", "addr", l.Addr().String(), "bounce_domain", domain, "starttls", tlsCfg != nil,
		"redis", store.RedactURL(cmpOr(e.getenv("REDIS_URL"), defaultRedisURL)))
	select {
	case <-ctx.Done():
	case err := <-served:
		if err != nil {
			fmt.Fprintf(e.stderr, "retain inbound: %v\n", err)
			return exitProblems
		}
	}
	log.Info("inbound stopping: finishing the sessions in progress")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	log.Info("inbound stopped")
	return exitOK
}
