package store

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestListSuppressionsPagesThroughEveryAddressOnce pages through a small list
// (a listpack, which HSCAN returns whole) and a large one (a hash table),
// with page sizes smaller and larger than HSCAN's batches.
func TestListSuppressionsPagesThroughEveryAddressOnce(t *testing.T) {
	for _, n := range []int{0, 5, 300} {
		b := setup(t)
		want := map[string]bool{}
		for i := range n {
			addr := fmt.Sprintf("user%03d@example.com", i)
			if err := b.store.Suppress(b.ctx, addr, "test", t0); err != nil {
				t.Fatal(err)
			}
			want[addr] = true
		}
		if got, err := b.store.CountSuppressions(b.ctx); err != nil || got != int64(n) {
			t.Errorf("%d addresses: CountSuppressions = %d, %v", n, got, err)
		}
		for _, limit := range []int{1, 7, 100, 1000} {
			seen := map[string]int{}
			cursor, pages := "", 0
			for {
				page, next, err := b.store.ListSuppressions(b.ctx, cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(page) > limit {
					t.Fatalf("%d addresses, limit %d: a page of %d", n, limit, len(page))
				}
				for _, s := range page {
					seen[s.Email]++
					if s.Reason != "test" || !s.At.Equal(t0) {
						t.Errorf("entry %+v", s)
					}
				}
				if next == "" {
					break
				}
				if pages > n+2 {
					t.Fatalf("%d addresses, limit %d: no end after %d pages", n, limit, pages)
				}
				cursor = next
			}
			for addr, k := range seen {
				if !want[addr] || k != 1 {
					t.Errorf("%d addresses, limit %d: %s listed %d times", n, limit, addr, k)
				}
			}
			if len(seen) != n {
				t.Errorf("%d addresses, limit %d: %d listed", n, limit, len(seen))
			}
		}
	}
}

func TestListSuppressionsRefusesACursorItDidNotGive(t *testing.T) {
	b := setup(t)
	for _, c := range []string{"not a cursor!", "MTI", "eA"} {
		if _, _, err := b.store.ListSuppressions(b.ctx, c, 10); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", c, err)
		}
	}
}

func TestUnsuppress(t *testing.T) {
	b := setup(t)
	b.store.Suppress(b.ctx, "ann@example.com", "bounce", t0)
	if removed, err := b.store.Unsuppress(b.ctx, " Ann@Example.com"); err != nil || !removed {
		t.Errorf("Unsuppress = %v, %v; want true", removed, err)
	}
	if removed, err := b.store.Unsuppress(b.ctx, "ann@example.com"); err != nil || removed {
		t.Errorf("Unsuppress again = %v, %v; want false", removed, err)
	}
	if keys := b.keys(t); len(keys) != 0 {
		t.Errorf("keys left: %v", keys)
	}
}

// TestSuppressionImportKeepsTheEarlierEntry: an address on the list keeps its
// reason and date; a dry run counts the same and writes nothing.
func TestSuppressionImportKeepsTheEarlierEntry(t *testing.T) {
	b := setup(t)
	if err := b.store.Suppress(b.ctx, "ann@example.com", "550 5.1.1 no such user", t0); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(24 * time.Hour)
	rows := []Suppression{
		{Email: "Ann@example.com", Reason: "unsubscribed", At: later},
		{Email: "bob@example.com", Reason: "spam complaint", At: later},
		{Email: "BOB@example.com", Reason: "hard bounce", At: later.Add(time.Hour)},
		{Email: "cy@example.com", Reason: "imported", At: later},
	}
	dry := &SuppressionImport{Store: b.store, DryRun: true}
	if err := dry.Add(b.ctx, rows[:2]); err != nil {
		t.Fatal(err)
	}
	if err := dry.Add(b.ctx, rows[2:]); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.store.CountSuppressions(b.ctx); n != 1 {
		t.Errorf("the dry run wrote: %d addresses", n)
	}
	im := &SuppressionImport{Store: b.store}
	if err := im.Add(b.ctx, rows); err != nil {
		t.Fatal(err)
	}
	if dry.Added != 2 || dry.Already != 2 || im.Added != 2 || im.Already != 2 {
		t.Errorf("dry run added %d, already %d; import added %d, already %d; want 2, 2 each", dry.Added, dry.Already, im.Added, im.Already)
	}
	got, err := b.store.Suppressions(b.ctx, []string{"ann@example.com", "bob@example.com", "cy@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := []*Suppression{
		{Email: "ann@example.com", Reason: "550 5.1.1 no such user", At: t0},
		{Email: "bob@example.com", Reason: "spam complaint", At: later},
		{Email: "cy@example.com", Reason: "imported", At: later},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("suppressions (-want +got):\n%s", diff)
	}
}

func TestSuppressionImportWritesManyBatches(t *testing.T) {
	b := setup(t)
	rows := make([]Suppression, 2*SuppressBatch+3)
	for i := range rows {
		rows[i] = Suppression{Email: fmt.Sprintf("u%d@example.com", i), Reason: "r", At: t0}
	}
	im := &SuppressionImport{Store: b.store}
	if err := im.Add(b.ctx, rows); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.store.CountSuppressions(b.ctx); im.Added != len(rows) || n != int64(len(rows)) {
		t.Errorf("added %d, %d on the list; want %d", im.Added, n, len(rows))
	}
}

// readAll reads a suppression file as retain does, at now = t0.
func readAll(t *testing.T, src string) (rows []SuppressionRow, bad []string, err error) {
	t.Helper()
	r, err := NewSuppressionReader(strings.NewReader(src), SuppressionCSV{Now: t0, Reason: "from test.csv"})
	if err != nil {
		return nil, nil, err
	}
	for {
		row, err := r.Next()
		var re *RowError
		switch {
		case err == io.EOF:
			return rows, bad, nil
		case errors.As(err, &re):
			bad = append(bad, re.Error())
		case err != nil:
			t.Fatal(err)
		default:
			rows = append(rows, row)
		}
	}
}

func sup(line int, email, reason string, at time.Time) SuppressionRow {
	return SuppressionRow{Line: line, Suppression: Suppression{Email: email, Reason: reason, At: at}}
}

func TestSuppressionReaderReadsOtherProvidersExports(t *testing.T) {
	day := time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		src  string
		want []SuppressionRow
		bad  []string
	}{{
		name: "comma, any column order, names without case, others ignored",
		src: "\ufeffStatus,Email Address,Created At,list\n" +
			"hard_bounce, Ann@Example.com ,2025-11-03T10:00:00+01:00,main\n" +
			"\n" +
			",bob@example.com,,main\n" +
			"\"spam, reported\",cy@example.com,1762128000,main\n",
		want: []SuppressionRow{
			sup(2, "ann@example.com", "hard_bounce", day.Add(9*time.Hour)),
			sup(4, "bob@example.com", "from test.csv", t0),
			sup(5, "cy@example.com", "spam, reported", day),
		},
	}, {
		name: "semicolon, reason before type, date formats",
		src: "recipient;type;reason;timestamp\r\n" +
			"a@example.com;bounce;550 5.1.1 user unknown;2025-11-03 00:00:00\r\n" +
			"b@example.com;complaint;;2025-11-03\r\n" +
			"c@example.com;;\"  multi\n  line\treason \";1762128000000\r\n",
		want: []SuppressionRow{
			sup(2, "a@example.com", "550 5.1.1 user unknown", day),
			sup(3, "b@example.com", "complaint", day),
			sup(4, "c@example.com", "multi line reason", day),
		},
	}, {
		name: "no header: one address a line",
		src:  "ann@example.com\nbob@example.com,whatever\n",
		want: []SuppressionRow{
			sup(1, "ann@example.com", "from test.csv", t0),
			sup(2, "bob@example.com", "from test.csv", t0),
		},
	}, {
		name: "bad rows, each with its line",
		src: "email,reason,date\n" +
			"ann@,bounce,\n" +
			",bounce,\n" +
			"bob@example.com,bounce,yesterday\n" +
			"cy@example.com,bounce,2027-01-01\n" +
			"dee@example.com,\"unclosed,2025-11-03\n" +
			"eve@example.com,ok,2025-11-03\n",
		want: nil,
		bad: []string{
			`line 2: "ann@" is not an email address`,
			"line 3: the address is missing",
			`line 4: date "yesterday" is not a date: use ` + DateFormats,
			`line 5: date "2027-01-01" is in the future`,
			`line 6: malformed CSV: extraneous or missing " in quoted-field (a cell holding quotes or the separator is quoted, its quotes doubled: "a ""b"" c")`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rows, bad, err := readAll(t, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rows); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.bad, bad); diff != "" {
				t.Errorf("bad rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuppressionReaderRefusesAFileWithoutAnAddressColumn(t *testing.T) {
	for src, want := range map[string]string{
		"":                        "line 1: the file is empty: it needs a header row naming the columns, such as email,reason,date",
		"name,reason\nAnn,x\n":    `line 1: the header row names no address column (it has "name", "reason"): name it email, email_address, "Email Address", address or recipient`,
		"user;kind\nann@;x\n":     `line 1: the header row names no address column (it has "user", "kind"): name it email, email_address, "Email Address", address or recipient`,
		"ann@,bounce\n":           `line 1: the header row names no address column (it has "ann@", "bounce"): name it email, email_address, "Email Address", address or recipient`,
		"\"email\n":               `line 1: the header row is malformed CSV: extraneous or missing " in quoted-field`,
		"E-Mail\nann@example.com": "",
	} {
		_, _, err := readAll(t, src)
		if got := fmt.Sprint(err); want == "" && err != nil || want != "" && got != want {
			t.Errorf("%q: err = %v\nwant %s", src, err, want)
		}
	}
}
