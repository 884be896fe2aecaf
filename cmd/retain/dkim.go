package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/retainmail/retain/mailer"
)

// dkimEnv is the variable that lists the worker's DKIM keys.
const dkimEnv = "RETAIN_DKIM_KEYS"

var dkimCmd = &command{
	name:    "dkim",
	summary: "Check that the DNS publishes the worker's DKIM keys",
	usage:   "dkim check [--dns HOST:PORT] [--timeout DURATION]",
	help: `check looks up the TXT record of each key in ` + dkimEnv + `
(<selector>._domainkey.<domain>) and says whether it publishes that key's public
key with its algorithm (k=). For a missing or different record it prints the
record to publish. It never prints a private key.

Environment:
  ` + dkimEnv + `  DOMAIN:SELECTOR:KEYFILE[,DOMAIN:SELECTOR:KEYFILE...], as for
                    retain worker (see docs/operations.md, "DKIM signing")

Exit status: 0 every key is published, 1 a record is missing, different or
could not be looked up, 2 the command line or ` + dkimEnv + ` is wrong.`,
	run: runDKIM,
}

func runDKIM(c *command, e *env, args []string) int {
	fs := c.flags()
	dnsAddr := fs.String("dns", "", "ask this DNS server (`HOST:PORT`) instead of the system resolver")
	timeout := fs.Duration("timeout", 10*time.Second, "how long each lookup may take")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || pos[0] != "check" {
		return c.usageError(e, "give a subcommand: check")
	}
	if e.getenv(dkimEnv) == "" {
		fmt.Fprintf(e.stderr, "retain dkim: %s is not set: give DOMAIN:SELECTOR:KEYFILE for each key, e.g. acme.example:s2026:/etc/retain/dkim-s2026.pem\n", dkimEnv)
		return exitUsage
	}
	keys, warnings, problems := dkimKeys(e.getenv(dkimEnv))
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "retain dkim: %s\n", p)
		}
		return exitUsage
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "retain dkim: warning: %s\n", w)
	}
	r := net.DefaultResolver
	if *dnsAddr != "" {
		if _, _, err := net.SplitHostPort(*dnsAddr); err != nil {
			return c.usageError(e, "--dns %q: want HOST:PORT, e.g. 1.1.1.1:53", *dnsAddr)
		}
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *dnsAddr)
		}}
	}
	failed := 0
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		err := checkDKIMKey(ctx, r, k)
		cancel()
		name := fmt.Sprintf("%s selector %s (%s)", k.Domain, k.Selector, keyAlgorithm(k))
		if err == nil {
			fmt.Fprintf(e.stdout, "ok       %s: %s publishes this key\n", name, k.RecordName())
			continue
		}
		failed++
		status := "error"
		switch {
		case errors.Is(err, mailer.ErrDKIMNoRecord):
			status = "missing"
		case errors.Is(err, mailer.ErrDKIMMismatch):
			status = "mismatch"
		case errors.Is(err, mailer.ErrDKIMBadRecord):
			status = "invalid"
		}
		fmt.Fprintf(e.stdout, "%-8s %s: %v\n", status, name, err)
		if status != "error" {
			record, _ := k.Record()
			fmt.Fprintf(e.stdout, "         publish TXT at %s:\n         %s\n", k.RecordName(), record)
		}
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "%d of %d DKIM keys are not published as configured\n", failed, len(keys))
		return exitProblems
	}
	return exitOK
}

// checkDKIMKey looks up k's record with r and compares it with k.
func checkDKIMKey(ctx context.Context, r *net.Resolver, k mailer.DKIMKey) error {
	// The trailing dot keeps the resolver from trying search domains.
	txts, err := r.LookupTXT(ctx, k.RecordName()+".")
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return fmt.Errorf("%w at %s", mailer.ErrDKIMNoRecord, k.RecordName())
	}
	if err != nil {
		return fmt.Errorf("lookup %s: %w", k.RecordName(), err)
	}
	if err := k.CheckRecord(txts); err != nil {
		if errors.Is(err, mailer.ErrDKIMNoRecord) {
			return fmt.Errorf("%w at %s (its TXT records hold no DKIM key)", err, k.RecordName())
		}
		return err
	}
	return nil
}

// keyAlgorithm is "rsa-2048" or "ed25519": what may be logged about a key.
func keyAlgorithm(k mailer.DKIMKey) string {
	if k.Algorithm() == mailer.DKIMRSA {
		return fmt.Sprintf("rsa-%d", k.Bits())
	}
	return k.Algorithm()
}

// dkimKeys reads RETAIN_DKIM_KEYS: comma-separated DOMAIN:SELECTOR:KEYFILE
// entries, each key file a PEM private key (PKCS#1 or PKCS#8 RSA, PKCS#8
// Ed25519). It returns every problem, each naming the variable and the entry (and
// never a key), and a warning for each RSA key under 2048 bits.
func dkimKeys(spec string) (keys []mailer.DKIMKey, warnings, problems []string) {
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			problems = append(problems, fmt.Sprintf("%s entry %d %q: want DOMAIN:SELECTOR:KEYFILE, e.g. acme.example:s2026:/etc/retain/dkim-s2026.pem", dkimEnv, i+1, entry))
			continue
		}
		k := mailer.DKIMKey{Domain: parts[0], Selector: parts[1]}
		where := fmt.Sprintf("%s %s:%s", dkimEnv, k.Domain, k.Selector)
		pemData, err := os.ReadFile(parts[2])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read the key file: %v", where, err))
			continue
		}
		if k.Signer, err = mailer.ParseDKIMKey(pemData); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", where, parts[2], err))
			continue
		}
		if k.Algorithm() == mailer.DKIMRSA && k.Bits() >= mailer.MinDKIMRSABits && k.Bits() < mailer.RecommendedDKIMRSABits {
			warnings = append(warnings, fmt.Sprintf("%s: RSA key of %d bits; use %d bits (some receivers treat shorter keys as weak)", where, k.Bits(), mailer.RecommendedDKIMRSABits))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("%s lists no key: want DOMAIN:SELECTOR:KEYFILE[,…]", dkimEnv))
	}
	if err := mailer.ValidateDKIMKeys(keys); err != nil {
		for _, p := range strings.Split(err.Error(), "; ") {
			problems = append(problems, dkimEnv+": "+p)
		}
	}
	return keys, warnings, problems
}
