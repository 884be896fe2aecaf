package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/retainmail/retain/internal/browsertest"
)

// TestBrowserPreviewAllIndexAndComparePage opens the folder retain preview
// --all --against writes, from file:// as a reviewer opens a CI artifact: the
// index lists the changed step, its compare link leads to a page with both HTML
// parts side by side and the text part as a diff. It saves screenshots of both.
func TestBrowserPreviewAllIndexAndComparePage(t *testing.T) {
	browsertest.Require(t)
	before, now := t.TempDir(), t.TempDir()
	for _, dir := range []string{before, now} {
		for _, sub := range []string{"campaigns", "templates"} {
			if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join("..", "..", sub))); err != nil {
				t.Fatal(err)
			}
		}
	}
	welcome := filepath.Join(now, "campaigns", "onboarding", "01-welcome.md")
	src, err := os.ReadFile(welcome)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "subject: 'Welcome to Acme,", "subject: 'Welcome aboard,", 1)
	edited = strings.Replace(edited, "Welcome to Acme Projects.", "Welcome to Acme Projects, the tool your team will actually use.", 1)
	if edited == string(src) {
		t.Fatal("the example welcome step no longer has the lines this test edits")
	}
	if err := os.WriteFile(welcome, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "preview")
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	if code := run([]string{"preview", "--all", "--out", out, "--against", before, now}, e); code != exitOK {
		t.Fatalf("retain preview --all: exit %d\n%s", code, stderr.String())
	}

	ctx := browsertest.New(t, 30*time.Second)
	index := (&url.URL{Scheme: "file", Path: filepath.Join(out, "index.html")}).String()
	err = chromedp.Do(ctx,
		chromedp.Navigate(index),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-step="onboarding/welcome"][data-locale=""]`)),
	)
	if err != nil {
		t.Fatalf("open %s: %v", index, err)
	}
	summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#summary`)))
	if err != nil || !strings.Contains(summary, "1 step changed, 0 new, 0 removed") {
		t.Errorf("index summary = %q, %v; want 1 step changed, 0 new, 0 removed", summary, err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`tr[data-step="onboarding/welcome"][data-locale=""]`)))
	if err != nil || !strings.Contains(row, "Welcome aboard, Ada") || !strings.Contains(row, "changed") {
		t.Errorf("the welcome row shows %q, %v; want its new subject, changed", row, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "preview-all-index.png", png)

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-step="onboarding/welcome"][data-locale=""] a[href$=".compare.html"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#text-diff`)),
	)
	if err != nil {
		t.Fatalf("follow the compare link: %v", err)
	}
	frames, err := chromedp.Run(ctx, chromedp.Evaluate[int](`[...document.querySelectorAll("iframe[sandbox]")].filter(f => f.getBoundingClientRect().width > 400).length`))
	if err != nil || frames != 2 {
		t.Errorf("%d sandboxed frames laid out side by side, %v; want 2", frames, err)
	}
	if got := frameText(t, ctx, "#before"); !strings.Contains(got, "Welcome to Acme Projects. Your workspace") {
		t.Errorf("the before frame shows %q, want the welcome email as it was", got)
	}
	if got := frameText(t, ctx, "#after"); !strings.Contains(got, "the tool your team will actually use") {
		t.Errorf("the after frame shows %q, want the edited welcome email", got)
	}
	del, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#text-diff del`)))
	if err != nil || !strings.Contains(del, "Welcome to Acme Projects. Your workspace") {
		t.Errorf("removed text line = %q, %v", del, err)
	}
	ins, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#text-diff ins`)))
	if err != nil || !strings.Contains(ins, "the tool your team will actually use") {
		t.Errorf("added text line = %q, %v", ins, err)
	}
	subject, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#subject.differs`)))
	if err != nil || !strings.Contains(subject, "Welcome to Acme, Ada") || !strings.Contains(subject, "Welcome aboard, Ada") {
		t.Errorf("subject row = %q, %v; want both subjects, marked as differing", subject, err)
	}
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	browsertest.SaveArtifact(t, "preview-all-compare.png", png)
}

// frameText returns the text of the document in the iframe sel of the current
// page. A sandboxed frame's document is not reachable from the page: Chromium
// runs it as a target of its own, which the test attaches to. (A copy of
// iframeText in web/browser_test.go, which package web's tests keep to
// themselves.)
func frameText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), "src"))
	if err != nil || !src.Exists {
		t.Fatalf("no iframe %s on the page: %v", sel, err)
	}
	var id target.ID
	for deadline := time.Now().Add(5 * time.Second); id == "" && time.Now().Before(deadline); {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasSuffix(info.URL, "/"+src.Value) {
				id = info.TargetID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if id == "" {
		t.Fatalf("Chromium shows no iframe target for %s", src.Value)
	}
	fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	text, err := chromedp.Run(fctx, chromedp.Text(chromedp.CSS(`body`)))
	if err != nil {
		t.Fatalf("read the document of iframe %s: %v", sel, err)
	}
	return text
}
