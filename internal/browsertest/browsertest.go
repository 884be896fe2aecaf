// Package browsertest starts headless Chromium for browser tests, driven through
// chromedp. It uses Debian's chromium (/usr/bin/chromium, installed by
// scripts/test) with the flags this project's machines need: no sandbox when
// running as root, and no background networking, which the closed network would
// refuse at every start.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path is where the Chromium of Debian's chromium package lives.
const Path = "/usr/bin/chromium"

// New starts a headless Chromium with a fresh profile and returns a context for
// chromedp.Run in its first tab. The browser is closed when the test ends, and
// every action on the context fails after timeout. It fails the test, saying to
// run scripts/test, when Chromium is not installed.
func New(tb testing.TB, timeout time.Duration) context.Context {
	tb.Helper()
	if _, err := os.Stat(Path); err != nil {
		tb.Fatalf("browser test needs Chromium at %s (%v): run scripts/test, which installs Debian's chromium package, or apt-get install chromium", Path, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.UserDataDir(tb.TempDir()),
		// The flags the env doc lists for these machines: Chromium refuses to
		// run as root with its sandbox, and its background connections are
		// refused by the closed network.
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(tb.Logf))
	tb.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, without a timeout (a timeout on the first run would
	// stop the whole browser), so a start failure is reported as one.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start Chromium (%s): %v", Path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	tb.Cleanup(cancel)
	return ctx
}

// SaveArtifact writes a test artifact (a screenshot) under the test's temporary
// directory and, when RETAIN_ARTIFACTS names a directory, copies it there too, so
// CI can keep it. It logs where the file is and returns that path.
func SaveArtifact(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	if dir := os.Getenv("RETAIN_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		path = filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("artifact: %s", path)
	return path
}
