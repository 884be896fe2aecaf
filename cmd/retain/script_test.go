package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/retainmail/retain/internal/redistest"
)

// TestMain lets testscript run the real retain command in-process.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"retain": func() {
			os.Exit(run(os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
		},
	})
}

// TestScripts runs testdata/script/*.txtar: each is a retain command line with its
// exit status and output, readable as documentation. RETAIN_UPDATE_SCRIPTS=1
// rewrites the expected output in place. $PROJECT is the repository root, whose
// campaigns/ and templates/ are the shipped examples.
func TestScripts(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Scripts run in parallel in the package's test database (queued tasks
	// have no prefix), each with its own key prefix for customers.
	rdb, redisURL := redistest.DB(t, redistest.CmdDB)
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("RETAIN_UPDATE_SCRIPTS") != "",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PROJECT", root)
			prefix := redistest.Prefix()
			e.Setenv("REDIS_URL", redisURL)
			e.Setenv("RETAIN_REDIS_PREFIX", prefix)
			e.Defer(func() { redistest.Delete(context.Background(), rdb, prefix) })
			return nil
		},
	})
}
