package redistest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/retainmail/retain/store"
)

// fakeRedis points REDIS_URL at an in-memory Redis for the test, so these tests
// take no database of a real one.
func fakeRedis(t *testing.T) *miniredis.Miniredis {
	t.Helper()
	m := miniredis.RunT(t)
	t.Setenv("REDIS_URL", "redis://"+m.Addr())
	return m
}

// fatalTB records the first Fatal of the code under test instead of failing the
// test, and stops that code's goroutine as Fatal does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalOf runs fn with a fatalTB and returns its Fatal message ("" when none).
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

func TestDBRefusesADatabaseHoldingAKeyOfSomeoneElseAndLeavesIt(t *testing.T) {
	m := fakeRedis(t)
	m.Select(QueueDB)
	m.Set("myapp:session:42", "precious")
	m.Set("asynq:{default}:t:1", "a task")

	msg := fatalOf(t, func(tb testing.TB) { DB(tb, QueueDB) })
	if !strings.Contains(msg, `"myapp:session:42"`) || !strings.Contains(msg, "point REDIS_URL at a Redis you can spare") {
		t.Errorf("DB refused with %q, want it to name the key and say what to do", msg)
	}
	if got := m.DB(QueueDB).Keys(); !slices.Equal(got, []string{"asynq:{default}:t:1", "myapp:session:42"}) {
		t.Errorf("the database holds %q after the refusal, want it untouched", got)
	}
}

func TestDBRefusesAsynqKeysWithoutTheMark(t *testing.T) {
	m := fakeRedis(t)
	m.Select(WebDB)
	m.Set("asynq:{default}:t:1", "another application's task")

	msg := fatalOf(t, func(tb testing.TB) { DB(tb, WebDB) })
	if !strings.Contains(msg, "another application's queues") {
		t.Errorf("DB refused with %q, want it to say the Asynq keys may be someone else's", msg)
	}
	if got := m.DB(WebDB).Keys(); !slices.Equal(got, []string{"asynq:{default}:t:1"}) {
		t.Errorf("the database holds %q after the refusal, want it untouched", got)
	}
}

func TestDBTakesAnEmptyDatabaseAndDeletesOnlyItsOwnKeys(t *testing.T) {
	m := fakeRedis(t)
	t.Run("first", func(t *testing.T) {
		rdb, url := DB(t, CmdDB)
		if want := fmt.Sprintf("redis://%s/%d", m.Addr(), CmdDB); url != want {
			t.Errorf("url = %q, want %q", url, want)
		}
		rdb.Set(t.Context(), "asynq:{sends}:t:1", "a task", 0)
		rdb.Set(t.Context(), store.CustomerPrefix(Prefix(), "1")+"c:1", "a customer", 0)
		if !m.DB(CmdDB).Exists(lockKey) {
			t.Error("the test does not hold the database's lock")
		}
	})
	if got := m.DB(CmdDB).Keys(); !slices.Equal(got, []string{ownerKey}) {
		t.Errorf("after the first test the database holds %q, want only the mark", got)
	}
	// A killed run leaves its keys: the next test takes the database (it
	// holds the mark) and finds it clear.
	m.DB(CmdDB).Set("asynq:{sends}:t:2", "a killed run's task")
	m.DB(CmdDB).Set(store.CustomerPrefix(Prefix(), "2")+"c:2", "a killed run's customer")
	t.Run("second", func(t *testing.T) {
		DB(t, CmdDB)
		if got := m.DB(CmdDB).Keys(); !slices.Equal(got, []string{lockKey, ownerKey}) {
			t.Errorf("the second test finds %q, want only the mark and its lock", got)
		}
	})
}

func TestDBRefusesATestInsideAnotherHoldingTheSameDatabase(t *testing.T) {
	fakeRedis(t)
	DB(t, QueueDB)
	msg := fatalOf(t, func(tb testing.TB) { DB(tb, QueueDB) })
	if !strings.Contains(msg, "is held by "+t.Name()) {
		t.Errorf("DB inside a test holding it said %q", msg)
	}
}

func TestNewRefusesATestDatabase(t *testing.T) {
	m := fakeRedis(t)
	t.Setenv("REDIS_URL", fmt.Sprintf("redis://%s/%d", m.Addr(), WebDB))
	msg := fatalOf(t, func(tb testing.TB) { New(tb) })
	if !strings.Contains(msg, "point it at another") {
		t.Errorf("New on database %d said %q", WebDB, msg)
	}
}

// The README says which databases the tests take.
func TestREADMEListsTheTestDatabases(t *testing.T) {
	var dbs []int
	for db := range databases {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	var names []string
	for _, db := range dbs {
		names = append(names, fmt.Sprint(db))
	}
	want := "databases " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	for _, path := range []string{"../../README.md", "../../scripts/test"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(strings.Fields(string(b)), " "), want) {
			t.Errorf("%s does not say %q, the databases of the table in internal/redistest", path, want)
		}
	}
}
