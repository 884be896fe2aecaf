package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/ingest"
	"github.com/retainmail/retain/lifecycle"
	"github.com/retainmail/retain/queue"
)

var importCmd = &command{
	name:    "import",
	summary: "Import customers and events from a CSV or JSONL file",
	usage:   "import [--dry-run] [--apply] [--encoding ENC] [--campaigns DIR] FILE.csv|FILE.jsonl",
	help: `JSONL: one customer per line, in the customer file format:
  {"id": "c42", "email": "ada@example.com", "first_name": "Ada", "stage": "active",
   "attributes": {"plan": "team"},
   "events": [{"name": "order_placed", "at": "2026-03-02T10:00:00Z", "data": {"total": 59.9}}]}

CSV: a header row naming the columns: id, email, first_name, name, locale,
timezone, stage, any attribute declared in lifecycle.yaml, and for an event on
the same row: event, at, event_id and data.<key>. Empty cells change nothing.

Customers are written at once; their events are queued for the workers (retain
worker), which apply them in order and send what they make due. With --apply the
events are applied in this process instead (a backfill without workers).

stage is where a new customer starts: it applies when the row creates the
customer and is ignored for one retain already has (retain customer set-stage
moves a customer). Other profile fields and attributes update the customer.

Every row is checked against lifecycle.yaml and the rules every way in shares:
addresses must be deliverable, names one line without control characters, event
times no more than 15 minutes ahead. A bad row is reported with its line and
reason and writes nothing; the good rows are kept. The file is UTF-8 (a byte-order
mark is fine); text that is not is a bad row, unless --encoding names the file's
encoding. A quote that is never closed is reported at the line where it opens,
and the rows after it are still read. Importing the same file again changes
nothing: customers are upserted and events are applied once (by event_id, or by
customer, name, time and data). Rows of one customer are applied in file order;
different customers in parallel.

Exit status: 0 every row imported, 1 some rows were bad (the rest are in), 2
usage error.

Environment: REDIS_URL, RETAIN_REDIS_PREFIX, RETAIN_CAMPAIGNS (see retain help event).`,
	run: runImport,
}

// importWorkers apply records in parallel, each customer always on the same one.
const importWorkers = 8

// importStats counts what an import did; safe for concurrent use.
type importStats struct {
	rows, bad, created, changed, unchanged, events, duplicates, queued atomic.Int64
}

func runImport(c *command, e *env, args []string) int {
	fs := c.flags()
	dryRun := fs.Bool("dry-run", false, "check every row and report, without writing anything")
	apply := fs.Bool("apply", false, "apply events in this process instead of queueing them for the workers")
	encoding := fs.String("encoding", "utf-8", "the file's character `ENC`oding: utf-8, latin1 or windows-1252")
	dirFlag := fs.String("campaigns", "", "project or campaigns `DIR` (default $RETAIN_CAMPAIGNS, else the current directory)")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usageError(e, "give one file to import")
	}
	if !slices.Contains(ingest.Encodings, strings.ToLower(*encoding)) && !slices.Contains([]string{"utf8", "latin-1", "iso-8859-1", "cp1252"}, strings.ToLower(*encoding)) {
		return c.usageError(e, "--encoding %q: use %s", *encoding, strings.Join(ingest.Encodings, ", "))
	}
	path := pos[0]
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain import: %v\n", err)
		return exitUsage
	}
	defer f.Close()
	info, _ := f.Stat()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var ws *workspace
	var l *loaded
	if *dryRun {
		l, code = loadChecked(c, e, *dirFlag)
	} else if ws, code = openWorkspace(ctx, c, e, *dirFlag); ws != nil {
		defer ws.close()
		l = ws.loaded
	}
	if l == nil {
		return code
	}
	counted := &countingReader{r: f}
	r, err := ingest.NewReaderWith(path, counted, l.set.Lifecycle, ingest.Options{Encoding: *encoding, Now: time.Now})
	if err != nil {
		fmt.Fprintf(e.stderr, "retain import: %v\n", err)
		return exitProblems
	}

	var st importStats
	out := &progress{w: e.stderr, on: isTerminal(e.stderr) && e.getenv("CI") == "", path: path, size: info.Size(), read: &counted.n, rows: &st.rows}
	out.start()
	report := func(err error) {
		st.bad.Add(1)
		out.println(err.Error())
	}

	var client *queue.Client
	if ws != nil {
		client = queue.NewClient(ws.rdb)
	}
	queues := make([]chan *ingest.Record, importWorkers)
	var wg sync.WaitGroup
	var fatal atomic.Pointer[error]
	for i := range queues {
		queues[i] = make(chan *ingest.Record, 64)
		wg.Go(func() {
			for rec := range queues[i] {
				if ws == nil || fatal.Load() != nil {
					continue
				}
				res, err := importRecord(ctx, ws, client, rec, *apply)
				switch {
				case ctx.Err() != nil:
					fatal.CompareAndSwap(nil, &err)
				case err != nil && isConnectionError(err):
					fatal.CompareAndSwap(nil, &err)
				case err != nil:
					report(fmt.Errorf("%s:%d: %v", path, rec.Line, errors.Unwrap(err)))
				default:
					st.count(res)
				}
			}
		})
	}
	var readErr error
	for ctx.Err() == nil && fatal.Load() == nil {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var ie *ingest.Error
		if errors.As(err, &ie) {
			st.rows.Add(1)
			report(ie)
			continue
		}
		if err != nil {
			readErr = err
			break
		}
		st.rows.Add(1)
		if msg := checkEventData(l.set, rec.Events); msg != "" {
			// As the API refuses it: a declared field of another type.
			report(fmt.Errorf("%s:%d: %s", path, rec.Line, msg))
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(rec.ID))
		queues[h.Sum32()%importWorkers] <- rec
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	out.stop()

	if p := fatal.Load(); p != nil || readErr != nil || ctx.Err() != nil {
		err := readErr
		if p != nil {
			err = *p
		}
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(e.stderr, "retain import: stopped after %d rows: %v\nRows already applied are kept; importing the file again skips them.\n", st.rows.Load(), err)
		return exitProblems
	}
	good := st.rows.Load() - st.bad.Load()
	if *dryRun {
		fmt.Fprintf(e.stdout, "%s: %d rows, %d good, %d bad; dry run, nothing written\n", path, st.rows.Load(), good, st.bad.Load())
	} else {
		events := fmt.Sprintf("%d events queued for the workers", st.queued.Load())
		if *apply {
			events = fmt.Sprintf("%d events applied, %d already applied", st.events.Load(), st.duplicates.Load())
		}
		fmt.Fprintf(e.stdout, "%s: %d rows: %d customers created, %d updated; %s; %d rows changed nothing; %d bad rows\n",
			path, st.rows.Load(), st.created.Load(), st.changed.Load(), events, st.unchanged.Load(), st.bad.Load())
	}
	if st.bad.Load() > 0 {
		return exitProblems
	}
	return exitOK
}

func (s *importStats) count(r importResult) {
	switch {
	case r.Created:
		s.created.Add(1)
	case r.Changed:
		s.changed.Add(1)
	case r.Events == 0 && r.queued == 0:
		s.unchanged.Add(1) // nothing new in this row at all
	}
	s.events.Add(int64(r.Events))
	s.duplicates.Add(int64(r.Duplicates))
	s.queued.Add(int64(r.queued))
}

// importResult is what one row did.
type importResult struct {
	ingest.Result
	queued int
}

// importRecord upserts the row's customer and applies or queues its events.
func importRecord(ctx context.Context, ws *workspace, client *queue.Client, rec *ingest.Record, apply bool) (importResult, error) {
	if apply {
		res, err := ws.applier.Record(ctx, rec)
		return importResult{Result: res}, err
	}
	res, err := ws.applier.Upsert(ctx, rec)
	if err != nil {
		return importResult{Result: res}, err
	}
	out := importResult{Result: res}
	for _, ev := range rec.Events {
		if err := client.EnqueueEvent(ctx, rec.ID, ev); err != nil {
			return out, err
		}
		out.queued++
	}
	return out, nil
}

// isConnectionError tells Redis being unreachable (stop the import) from a bad
// record (report it and go on).
func isConnectionError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "EOF") || errors.Is(err, context.DeadlineExceeded)
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// checkEventData is ingest.CheckEventData on each of events: what the API
// refuses of an event's declared data fields, "" when nothing.
func checkEventData(set *campaign.Set, events []lifecycle.Event) string {
	for _, ev := range events {
		if field, err := ingest.CheckEventData(set, ev); err != nil {
			return fmt.Sprintf("event %s: %s: %v", ev.Name, field, err)
		}
	}
	return ""
}
