// Package browsertest starts headless Chromium for browser tests, driven through
// chromedp. It uses Debian's chromium (/usr/bin/chromium, installed by
// scripts/test; $RETAIN_CHROMIUM names another) with the flags this project's
// machines need: no sandbox when running as root, and no background networking,
// which the closed network would refuse at every start.
//
// Without Chromium a browser test is skipped, with one line saying so, unless
// RETAIN_BROWSER=required (scripts/test sets it once Chromium is installed): then
// it fails.
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

// chromium is the Chromium the tests drive: $RETAIN_CHROMIUM, else Path.
func chromium() string {
	if p := os.Getenv("RETAIN_CHROMIUM"); p != "" {
		return p
	}
	return Path
}

// Require skips the test when Chromium is not installed, or fails it when
// RETAIN_BROWSER=required. A browser test calls it first, before its setup.
func Require(tb testing.TB) {
	tb.Helper()
	path := chromium()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("RETAIN_BROWSER") == "required" {
			tb.Fatalf("browser test needs Chromium at %s (%v), and RETAIN_BROWSER=required: run scripts/test, which installs Debian's chromium package, or apt-get install chromium", path, err)
		}
		tb.Skipf("browser test skipped: no Chromium at %s (scripts/test installs it; RETAIN_BROWSER=required makes this a failure)", path)
	}
}

// New starts a headless Chromium with a fresh profile and returns a context for
// chromedp.Run in its first tab. The browser is closed when the test ends, and
// every action on the context fails after timeout. Without Chromium it skips or
// fails the test as Require does.
func New(tb testing.TB, timeout time.Duration) context.Context {
	tb.Helper()
	Require(tb)
	path := chromium()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
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
		tb.Fatalf("start Chromium (%s): %v", path, err)
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
