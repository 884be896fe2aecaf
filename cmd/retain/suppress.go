package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/store"
)

var suppressCmd = &command{
	name:    "suppress",
	summary: "List, add, remove or import addresses never to mail again (the suppression list)",
	usage: `suppress list [--json] [--limit N]
       retain suppress add [--reason TEXT] ADDRESS
       retain suppress remove ADDRESS
       retain suppress import [--dry-run] [--skip-invalid] [--reason TEXT] FILE.csv`,
	help: `The suppression list holds the addresses retain never mails, whichever
customer has them: hard bounces and complaints land there by themselves; add
others by hand or import the list of the provider you come from. An address
is compared without case.

list prints the addresses, one a line: address, date (RFC 3339, UTC) and
reason, separated by tabs, in no particular order (pipe it to sort); with
--json, one JSON array of {"email", "reason", "at"}. --limit stops after N.

add puts ADDRESS on the list, dated now, with --reason (default "added by
hand"). An address on the list already keeps its entry: its first reason and
date say when and why it had to stop. remove takes ADDRESS off the list, so it
may be mailed again (exit 1 when it was not on it).

import reads the suppression export of another provider: CSV separated by
commas or semicolons (whichever the header row holds more of), UTF-8, with a
header row naming the columns, in any order, names compared without case:
  the address  email, email_address, "Email Address", address or recipient
  the reason   reason, type or status (the first a row fills); optional
  the date     date, created, created_at, timestamp or suppressed_at; optional
Other columns are ignored. A file without a header whose first row starts
with an address is read as a list of addresses. Dates are RFC 3339
(2026-03-02T09:00:00Z), 2026-03-02 09:00:00 (UTC), 2026-03-02 (UTC) or Unix
seconds (1772442000); a row without one is dated now, a row without a reason
gets --reason (default "imported from FILE.csv").

Every row is checked before anything is written: the address (as every way in
checks one), the date (not more than a day ahead). Each bad row is printed as
FILE:LINE: reason, and then nothing is imported (exit 1), unless
--skip-invalid: the good rows are imported and the bad ones skipped (exit 0).
An address on the list already keeps its entry and counts as already
suppressed, as does an address listed twice. Importing the same file again adds
nothing. The summary says how many rows were added, already suppressed and
skipped; a large file shows its progress.

Exit status: 0 done, 1 problems (bad rows, an address not on the list, Redis
unavailable), 2 usage error.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX.

Examples:
  retain suppress list | sort
  retain suppress list --json --limit 100
  retain suppress add --reason "asked by phone" ann@example.com
  retain suppress remove ann@example.com
  retain suppress import --dry-run mailchimp-cleaned.csv
  retain suppress import --skip-invalid --reason "SendGrid bounces" bounces.csv`,
	run: runSuppress,
}

// suppressFlags are the flags of suppress, and the subcommands each is for.
var suppressFlags = map[string][]string{
	"json": {"list"}, "limit": {"list"}, "reason": {"add", "import"},
	"dry-run": {"import"}, "skip-invalid": {"import"},
}

// suppressOpts are the parsed flags.
type suppressOpts struct {
	json, dryRun, skip bool
	limit              int
	reason             string
}

func runSuppress(c *command, e *env, args []string) int {
	fs := c.flags()
	var o suppressOpts
	fs.BoolVar(&o.json, "json", false, "list: print one JSON array")
	fs.IntVar(&o.limit, "limit", 0, "list: print at most `N` addresses (default all)")
	fs.StringVar(&o.reason, "reason", "", "add, import: the reason, as `TEXT` (import: of rows without one)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "import: check every row and count, write nothing")
	fs.BoolVar(&o.skip, "skip-invalid", false, "import: import the good rows when some are bad, skipping those")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return c.usageError(e, "give a subcommand: list, add, remove or import")
	}
	sub, pos := pos[0], pos[1:]
	if !slices.Contains([]string{"list", "add", "remove", "import"}, sub) {
		return c.usageError(e, "unknown subcommand %q: use list, add, remove or import", sub)
	}
	var misplaced error
	fs.Visit(func(f *flag.Flag) {
		if misplaced == nil && !slices.Contains(suppressFlags[f.Name], sub) {
			misplaced = fmt.Errorf("--%s is for %s, not %s", f.Name, strings.Join(suppressFlags[f.Name], " and "), sub)
		}
	})
	if misplaced != nil {
		return c.usageError(e, "%v", misplaced)
	}
	o.reason = strings.TrimSpace(o.reason)
	if strings.ContainsFunc(o.reason, unicode.IsControl) || len(o.reason) > store.MaxReason {
		return c.usageError(e, "--reason must be one line of at most %d bytes", store.MaxReason)
	}
	switch {
	case sub == "list" && len(pos) > 0:
		return c.usageError(e, "list takes no argument, got %q", pos[0])
	case sub == "list" && o.limit < 0:
		return c.usageError(e, "--limit %d: give a number of addresses, or 0 for all", o.limit)
	case sub == "import" && len(pos) != 1:
		return c.usageError(e, "import takes one CSV file")
	case (sub == "add" || sub == "remove") && len(pos) != 1:
		return c.usageError(e, "%s takes one address", sub)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var f *os.File
	if sub == "import" { // a missing file before Redis
		var err error
		if f, err = os.Open(pos[0]); err != nil {
			fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
			return exitUsage
		}
		defer f.Close()
	}
	if sub == "add" {
		if err := ingest.CheckEmail(strings.TrimSpace(pos[0])); err != nil {
			return c.usageError(e, "%v", err)
		}
	}
	st, rdb, err := openStore(ctx, e)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
		return exitProblems
	}
	defer rdb.Close()
	switch sub {
	case "list":
		return suppressList(ctx, e, st, o)
	case "add":
		return suppressAdd(ctx, e, st, strings.TrimSpace(pos[0]), cmp.Or(o.reason, "added by hand"))
	case "remove":
		return suppressRemove(ctx, e, st, strings.TrimSpace(pos[0]))
	}
	return suppressImport(ctx, e, st, f, pos[0], o)
}

// suppressionJSON is one address as list --json prints it.
type suppressionJSON struct {
	Email  string    `json:"email"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func suppressList(ctx context.Context, e *env, st *store.Store, o suppressOpts) int {
	total, err := st.CountSuppressions(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
		return exitProblems
	}
	if o.json {
		fmt.Fprint(e.stdout, "[")
	}
	n, cursor := 0, ""
	for {
		size := 1000
		if o.limit > 0 {
			size = min(size, o.limit-n)
		}
		page, next, err := st.ListSuppressions(ctx, cursor, size)
		if err != nil {
			fmt.Fprintf(e.stderr, "\nretain suppress: stopped after %d addresses: %v\n", n, err)
			return exitProblems
		}
		for _, s := range page {
			at := s.At.UTC()
			if o.json {
				b, _ := json.Marshal(suppressionJSON{Email: s.Email, Reason: s.Reason, At: at})
				if n > 0 {
					fmt.Fprint(e.stdout, ",")
				}
				fmt.Fprintf(e.stdout, "\n  %s", b)
			} else {
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", s.Email, at.Format(time.RFC3339), s.Reason)
			}
			n++
		}
		if next == "" || o.limit > 0 && n >= o.limit || ctx.Err() != nil {
			break
		}
		cursor = next
	}
	if o.json {
		if n > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintln(e.stdout, "]")
	}
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(e.stderr, "retain suppress: interrupted after %d addresses\n", n)
		return exitProblems
	case total == 0:
		fmt.Fprintln(e.stderr, "retain suppress: the suppression list is empty")
	case !o.json:
		fmt.Fprintf(e.stderr, "retain suppress: %d of %d suppressed addresses listed\n", n, total)
	}
	return exitOK
}

func suppressAdd(ctx context.Context, e *env, st *store.Store, addr, reason string) int {
	im := &store.SuppressionImport{Store: st}
	if err := im.Add(ctx, []store.Suppression{{Email: addr, Reason: reason, At: time.Now()}}); err != nil {
		fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
		return exitProblems
	}
	if im.Added == 1 {
		fmt.Fprintf(e.stdout, "%s suppressed (%s): retain will not mail it\n", strings.ToLower(addr), reason)
		return exitOK
	}
	sup, err := st.Suppression(ctx, addr)
	if err != nil || sup == nil {
		fmt.Fprintf(e.stderr, "retain suppress: %s is suppressed already, but reading its entry failed: %v\n", addr, err)
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "%s is suppressed already, since %s (%s); its entry is kept\n", sup.Email, sup.At.UTC().Format(time.RFC3339), sup.Reason)
	return exitOK
}

func suppressRemove(ctx context.Context, e *env, st *store.Store, addr string) int {
	removed, err := st.Unsuppress(ctx, addr)
	switch {
	case err != nil:
		fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
		return exitProblems
	case !removed:
		fmt.Fprintf(e.stderr, "retain suppress: %s is not on the suppression list; nothing changed\n", strings.ToLower(addr))
		return exitProblems
	}
	fmt.Fprintf(e.stdout, "%s removed from the suppression list: retain may mail it again\n", strings.ToLower(addr))
	return exitOK
}

// importChunk is how many rows one progress step of an import writes.
const importChunk = 10 * store.SuppressBatch

// suppressImport reads f twice: once to check every row (and print the bad
// ones), once to write the good ones in chunks. Memory stays the same
// whatever the file's size.
func suppressImport(ctx context.Context, e *env, st *store.Store, f *os.File, path string, o suppressOpts) int {
	info, err := f.Stat()
	if err != nil {
		fmt.Fprintf(e.stderr, "retain suppress: %v\n", err)
		return exitProblems
	}
	opts := store.SuppressionCSV{CheckEmail: ingest.CheckEmail, Reason: cmp.Or(o.reason, "imported from "+filepath.Base(path)), Now: time.Now()}
	var rows atomic.Int64
	pass := func(label string) (*store.SuppressionReader, *progress, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, nil, err
		}
		counted := &countingReader{r: f}
		rows.Store(0)
		out := &progress{w: e.stderr, on: isTerminal(e.stderr) && e.getenv("CI") == "", path: path + " (" + label + ")",
			size: info.Size(), read: &counted.n, rows: &rows}
		r, err := store.NewSuppressionReader(counted, opts)
		return r, out, err
	}
	// fileError prints a *store.RowError as FILE:LINE: reason.
	fileError := func(err error) string {
		var re *store.RowError
		if errors.As(err, &re) {
			return fmt.Sprintf("%s:%d: %s", path, re.Line, re.Msg)
		}
		return fmt.Sprintf("retain suppress: %s: %v", path, err)
	}

	r, out, err := pass("checking")
	if err != nil {
		fmt.Fprintln(e.stderr, fileError(err))
		return exitProblems
	}
	out.start()
	bad := 0
	for ctx.Err() == nil {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		rows.Add(1)
		var re *store.RowError
		if errors.As(err, &re) {
			bad++
			out.println(fileError(err))
			continue
		}
		if err != nil {
			out.stop()
			fmt.Fprintln(e.stderr, fileError(err))
			return exitProblems
		}
	}
	out.stop()
	total := int(rows.Load())
	if ctx.Err() != nil {
		fmt.Fprintln(e.stderr, "retain suppress: interrupted while checking: nothing was imported")
		return exitProblems
	}
	if bad > 0 && !o.skip {
		fmt.Fprintf(e.stderr, "retain suppress: %d of %d rows are invalid: nothing was imported; fix them, or run again with --skip-invalid to import the other %d\n", bad, total, total-bad)
		return exitProblems
	}

	r, out, err = pass("importing")
	if err != nil {
		fmt.Fprintln(e.stderr, fileError(err))
		return exitProblems
	}
	im := &store.SuppressionImport{Store: st, DryRun: o.dryRun}
	chunk := make([]store.Suppression, 0, importChunk)
	start, last := time.Now(), time.Now()
	write := func() error {
		if err := im.Add(ctx, chunk); err != nil {
			return err
		}
		chunk = chunk[:0]
		// Off a terminal, a line every 2 seconds once it takes that long.
		if now := time.Now(); !out.on && now.Sub(start) >= 2*time.Second && now.Sub(last) >= 2*time.Second {
			last = now
			out.println(fmt.Sprintf("retain suppress: %d of %d rows (%d%%)", rows.Load(), total, rows.Load()*100/int64(max(total, 1))))
		}
		return nil
	}
	out.start()
	for ctx.Err() == nil {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		rows.Add(1)
		var re *store.RowError
		if errors.As(err, &re) {
			continue // printed by the check
		}
		if err == nil {
			chunk = append(chunk, row.Suppression)
			if len(chunk) < importChunk {
				continue
			}
			err = write()
		}
		if err != nil {
			out.stop()
			fmt.Fprintf(e.stderr, "retain suppress: stopped after %d rows: %v\n%d addresses were added; importing the file again adds the rest (addresses on the list keep their entry)\n", rows.Load(), err, im.Added)
			return exitProblems
		}
	}
	if err := ctx.Err(); err == nil && len(chunk) > 0 {
		if err := write(); err != nil {
			out.stop()
			fmt.Fprintf(e.stderr, "retain suppress: stopped after %d rows: %v\n%d addresses were added; importing the file again adds the rest (addresses on the list keep their entry)\n", rows.Load(), err, im.Added)
			return exitProblems
		}
	}
	out.stop()
	if ctx.Err() != nil {
		fmt.Fprintf(e.stderr, "retain suppress: interrupted after %d rows; %d addresses were added; importing the file again adds the rest\n", rows.Load(), im.Added)
		return exitProblems
	}
	if o.dryRun {
		fmt.Fprintf(e.stdout, "%s: %d rows: %d would be added, %d already suppressed, %d skipped (invalid); dry run, nothing written\n", path, total, im.Added, im.Already, bad)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%s: %d rows: %d added, %d already suppressed (their entries kept), %d skipped (invalid)\n", path, total, im.Added, im.Already, bad)
	return exitOK
}
