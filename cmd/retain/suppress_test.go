package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/store"
)

// suppressBundle runs retain in-process against the test Redis, under a key
// prefix of the test's own.
type suppressBundle struct {
	t     *testing.T
	store *store.Store
	vars  map[string]string
	dir   string
}

func setupSuppress(t *testing.T) *suppressBundle {
	t.Helper()
	rdb, prefix := redistest.New(t)
	return &suppressBundle{t: t, store: store.New(rdb, prefix), dir: t.TempDir(),
		vars: map[string]string{"REDIS_URL": redistest.URL(), "RETAIN_REDIS_PREFIX": prefix}}
}

// retain runs the command line and checks its exit code.
func (b *suppressBundle) retain(wantCode int, args ...string) (stdout, stderr string) {
	b.t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return b.vars[k] }}
	if code := run(args, e); code != wantCode {
		b.t.Fatalf("retain %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// file writes a file in the test's folder and returns its path.
func (b *suppressBundle) file(name, content string) string {
	b.t.Helper()
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// entry is the address's suppression, nil when it is not on the list.
func (b *suppressBundle) entry(addr string) *store.Suppression {
	b.t.Helper()
	sup, err := b.store.Suppression(b.t.Context(), addr)
	if err != nil {
		b.t.Fatal(err)
	}
	return sup
}

func (b *suppressBundle) count() int64 {
	b.t.Helper()
	n, err := b.store.CountSuppressions(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

func TestSuppressAddListRemove(t *testing.T) {
	b := setupSuppress(t)
	_, stderr := b.retain(exitOK, "suppress", "list")
	if !strings.Contains(stderr, "the suppression list is empty") {
		t.Errorf("list of nothing, stderr:\n%s", stderr)
	}
	out, _ := b.retain(exitOK, "suppress", "add", "--reason", "asked by phone", "Ann@Example.com")
	if out != "ann@example.com suppressed (asked by phone): retain will not mail it\n" {
		t.Errorf("add: %q", out)
	}
	first := b.entry("ann@example.com")
	if first == nil || first.Reason != "asked by phone" || time.Since(first.At) > time.Minute {
		t.Fatalf("stored %+v", first)
	}
	// Added again: the first entry stays.
	out, _ = b.retain(exitOK, "suppress", "add", "ann@example.com", "--reason", "complaint")
	if want := fmt.Sprintf("ann@example.com is suppressed already, since %s (asked by phone); its entry is kept\n", first.At.UTC().Format(time.RFC3339)); out != want {
		t.Errorf("add again: %q\nwant %q", out, want)
	}
	b.retain(exitOK, "suppress", "add", "bob@example.com")

	out, stderr = b.retain(exitOK, "suppress", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(out, "ann@example.com\t"+first.At.UTC().Format(time.RFC3339)+"\tasked by phone\n") ||
		!strings.Contains(out, "bob@example.com\t") || !strings.Contains(out, "\tadded by hand\n") {
		t.Errorf("list:\n%s", out)
	}
	if !strings.Contains(stderr, "2 of 2 suppressed addresses listed") {
		t.Errorf("list, stderr:\n%s", stderr)
	}
	out, _ = b.retain(exitOK, "suppress", "list", "--json", "--limit", "1")
	var listed []suppressionJSON
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].Email == "" || listed[0].At.IsZero() {
		t.Errorf("list --json --limit 1: %v\n%s", err, out)
	}
	out, _ = b.retain(exitOK, "suppress", "list", "--json")
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 2 {
		t.Errorf("list --json: %v\n%s", err, out)
	}

	out, _ = b.retain(exitOK, "suppress", "remove", "ANN@example.com")
	if out != "ann@example.com removed from the suppression list: retain may mail it again\n" {
		t.Errorf("remove: %q", out)
	}
	_, stderr = b.retain(exitProblems, "suppress", "remove", "ann@example.com")
	if stderr != "retain suppress: ann@example.com is not on the suppression list; nothing changed\n" {
		t.Errorf("remove again: %q", stderr)
	}
	if b.entry("ann@example.com") != nil || b.count() != 1 {
		t.Errorf("after remove: %d on the list", b.count())
	}
}

func TestSuppressRefusesWrongCommandLines(t *testing.T) {
	b := setupSuppress(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"suppress"}, "give a subcommand: list, add, remove or import"},
		{[]string{"suppress", "delete", "a@example.com"}, `unknown subcommand "delete": use list, add, remove or import`},
		{[]string{"suppress", "add", "--json", "a@example.com"}, "--json is for list, not add"},
		{[]string{"suppress", "list", "--skip-invalid"}, "--skip-invalid is for import, not list"},
		{[]string{"suppress", "add", "a@"}, `email "a@" is not an email address`},
		{[]string{"suppress", "add"}, "add takes one address"},
		{[]string{"suppress", "list", "--limit", "-3"}, "--limit -3: give a number of addresses, or 0 for all"},
		{[]string{"suppress", "add", "--reason", "two\nlines", "a@example.com"}, "--reason must be one line of at most 500 bytes"},
		{[]string{"suppress", "import"}, "import takes one CSV file"},
		{[]string{"suppress", "import", filepath.Join(b.dir, "missing.csv")}, "no such file or directory"},
	} {
		_, stderr := b.retain(exitUsage, tc.args...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("retain %s: stderr %q, want %q", strings.Join(tc.args, " "), stderr, tc.want)
		}
	}
	if b.count() != 0 {
		t.Errorf("%d addresses suppressed by wrong command lines", b.count())
	}
}

func TestSuppressNeverPrintsTheRedisPassword(t *testing.T) {
	b := setupSuppress(t)
	b.vars["REDIS_URL"] = "redis://:s3cr3t-pw@127.0.0.1:1/0"
	stdout, stderr := b.retain(exitProblems, "suppress", "list")
	if strings.Contains(stdout+stderr, "s3cr3t-pw") {
		t.Errorf("the password is printed:\n%s%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "retain suppress:") {
		t.Errorf("stderr does not say what failed:\n%s", stderr)
	}
}

// TestSuppressImportWithBadRowsImportsNothingAndNamesEachLine: every row is
// checked first; with any bad row nothing is written unless --skip-invalid,
// which imports the good rows. An address on the list keeps its entry.
func TestSuppressImportWithBadRowsImportsNothingAndNamesEachLine(t *testing.T) {
	b := setupSuppress(t)
	earlier := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := b.store.Suppress(t.Context(), "old@example.com", "550 5.1.1 user unknown", earlier); err != nil {
		t.Fatal(err)
	}
	path := b.file("bounces.csv", "email,reason,created_at,list\n"+
		"ann@example.com,hard_bounce,2025-11-03T10:00:00Z,main\n"+
		"ann@@example.com,hard_bounce,2025-11-03,main\n"+
		",spam,2025-11-03,main\n"+
		"OLD@example.com,unsubscribed,2025-11-04,main\n"+
		"bob@example.com,spam,03/11/2025,main\n"+
		"cy@example.com,,1762128000,main\n")
	wantBad := []string{
		path + `:3: email "ann@@example.com" is not an email address`,
		path + ":4: the address is missing",
		path + `:6: date "03/11/2025" is not a date: use ` + store.DateFormats,
	}
	_, stderr := b.retain(exitProblems, "suppress", "import", path)
	for _, want := range wantBad {
		if !strings.Contains(stderr, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stderr, "3 of 6 rows are invalid: nothing was imported; fix them, or run again with --skip-invalid to import the other 3") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if n := b.count(); n != 1 {
		t.Fatalf("%d addresses on the list; the import must write nothing", n)
	}

	out, _ := b.retain(exitOK, "suppress", "import", "--skip-invalid", "--dry-run", path)
	if want := path + ": 6 rows: 2 would be added, 1 already suppressed, 3 skipped (invalid); dry run, nothing written\n"; out != want {
		t.Errorf("dry run: %q\nwant %q", out, want)
	}
	if n := b.count(); n != 1 {
		t.Fatalf("the dry run wrote: %d addresses", n)
	}

	out, stderr = b.retain(exitOK, "suppress", "import", path, "--skip-invalid")
	if want := path + ": 6 rows: 2 added, 1 already suppressed (their entries kept), 3 skipped (invalid)\n"; out != want {
		t.Errorf("import: %q\nwant %q", out, want)
	}
	for _, want := range wantBad {
		if !strings.Contains(stderr, want) {
			t.Errorf("--skip-invalid does not report %q:\n%s", want, stderr)
		}
	}
	day := time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC)
	for addr, want := range map[string]*store.Suppression{
		"ann@example.com": {Email: "ann@example.com", Reason: "hard_bounce", At: day.Add(10 * time.Hour)},
		"old@example.com": {Email: "old@example.com", Reason: "550 5.1.1 user unknown", At: earlier},
		"cy@example.com":  {Email: "cy@example.com", Reason: "imported from bounces.csv", At: day},
		"bob@example.com": nil,
	} {
		if diff := cmp.Diff(want, b.entry(addr)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", addr, diff)
		}
	}

	// Again: nothing new.
	out, _ = b.retain(exitOK, "suppress", "import", path, "--skip-invalid")
	if !strings.Contains(out, ": 6 rows: 0 added, 3 already suppressed") {
		t.Errorf("import again: %q", out)
	}
}

func TestSuppressImportReadsASemicolonExport(t *testing.T) {
	b := setupSuppress(t)
	path := b.file("mailchimp.csv", "\ufeff\"Email Address\";Type;Created\r\n"+
		"ann@example.com;cleaned;2025-11-03 08:15:00\r\n"+
		"\"bob@example.com\";\"unsubscribed; by link\";2025-11-02\r\n"+
		"cy@example.com;;\r\n")
	before := time.Now()
	out, _ := b.retain(exitOK, "suppress", "import", "--reason", "Mailchimp", path)
	if want := path + ": 3 rows: 3 added, 0 already suppressed (their entries kept), 0 skipped (invalid)\n"; out != want {
		t.Errorf("import: %q\nwant %q", out, want)
	}
	for addr, want := range map[string]store.Suppression{
		"ann@example.com": {Email: "ann@example.com", Reason: "cleaned", At: time.Date(2025, 11, 3, 8, 15, 0, 0, time.UTC)},
		"bob@example.com": {Email: "bob@example.com", Reason: "unsubscribed; by link", At: time.Date(2025, 11, 2, 0, 0, 0, 0, time.UTC)},
	} {
		if diff := cmp.Diff(&want, b.entry(addr)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", addr, diff)
		}
	}
	if cy := b.entry("cy@example.com"); cy == nil || cy.Reason != "Mailchimp" || cy.At.Before(before.Add(-time.Second)) {
		t.Errorf("cy: %+v; want reason Mailchimp, dated now", cy)
	}
}

func TestSuppressImportOfManyRowsWritesThemAll(t *testing.T) {
	b := setupSuppress(t)
	var src strings.Builder
	src.WriteString("recipient\n")
	const n = 2*importChunk + 17
	for i := range n {
		fmt.Fprintf(&src, "user%d@example.com\n", i)
	}
	path := b.file("big.csv", src.String())
	out, _ := b.retain(exitOK, "suppress", "import", path)
	if want := fmt.Sprintf("%s: %d rows: %d added, 0 already suppressed (their entries kept), 0 skipped (invalid)\n", path, n, n); out != want {
		t.Errorf("import: %q\nwant %q", out, want)
	}
	if got := b.count(); got != n {
		t.Errorf("%d on the list, want %d", got, n)
	}
}

func TestSuppressImportOfAFileWithoutAnAddressColumn(t *testing.T) {
	b := setupSuppress(t)
	path := b.file("people.csv", "name,reason\nAnn,bounce\n")
	_, stderr := b.retain(exitProblems, "suppress", "import", path)
	want := path + `:1: the header row names no address column (it has "name", "reason"): name it email, email_address, "Email Address", address or recipient` + "\n"
	if stderr != want {
		t.Errorf("stderr %q\nwant %q", stderr, want)
	}
}
