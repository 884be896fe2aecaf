package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
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
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: os.Getenv("RETAIN_UPDATE_SCRIPTS") != "",
		Setup: func(e *testscript.Env) error {
			e.Setenv("PROJECT", root)
			// Commands that need Redis use the test Redis under a prefix of
			// the script's own, removed when the script ends.
			prefix := redistest.Prefix()
			e.Setenv("REDIS_URL", redistest.URL())
			e.Setenv("RETAIN_REDIS_PREFIX", prefix)
			e.Defer(func() {
				opt, err := redis.ParseURL(redistest.URL())
				if err != nil {
					return
				}
				rdb := redis.NewClient(opt)
				defer rdb.Close()
				redistest.Delete(context.Background(), rdb, prefix)
			})
			return nil
		},
	})
}
