package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run `retain dev` as a developer does, on a free port with the
// in-memory Redis, and use it over HTTP.

const devToken = "dev-test-token-0123456789"

type devBundle struct {
	cmd *exec.Cmd
	out *syncBuffer
	// base is the web address retain dev printed (http://localhost:PORT).
	base string
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the output matches re and returns the match.
func (s *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("retain dev did not print %q within %s", re, timeout)
		}
	}
}

// runDevProcess runs `retain dev args...` in the repository root with a clean
// environment (no REDIS_URL: the in-memory Redis) and waits until it is ready.
func runDevProcess(t *testing.T, args ...string) *devBundle {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := retainBinary(t)
	cmd := exec.Command(bin, append([]string{"dev"}, args...)...)
	cmd.Dir = filepath.Join("..", "..")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REDIS_URL=") && !strings.HasPrefix(kv, "RETAIN_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+t.TempDir(), "RETAIN_API_TOKEN="+devToken)
	b := &devBundle{cmd: cmd, out: &syncBuffer{}}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = b.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(b.out, bufio.NewReader(stdout))
		close(copied)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-copied
		cmd.Wait()
		if t.Failed() {
			t.Logf("retain dev %s:\n%s", strings.Join(args, " "), b.out.String())
		}
	})
	m := b.out.waitFor(t, regexp.MustCompile(`inbox +(http://localhost:\d+)/inbox/`), 10*time.Second)
	b.base = m[1]
	b.out.waitFor(t, regexp.MustCompile(`ready in \S+`), 10*time.Second)
	return b
}

type inboxMessage struct {
	ID      int                 `json:"id"`
	To      []string            `json:"to"`
	Subject string              `json:"subject"`
	Header  map[string][]string `json:"header"`
	Text    string              `json:"text"`
	HTML    string              `json:"html"`
}

func (b *devBundle) messages(t *testing.T) []inboxMessage {
	t.Helper()
	resp, err := http.Get(b.base + "/inbox/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Messages []inboxMessage }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got.Messages
}

// waitMessage polls the inbox until a message to addr arrives.
func (b *devBundle) waitMessage(t *testing.T, to string, timeout time.Duration) inboxMessage {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		for _, m := range b.messages(t) {
			if len(m.To) == 1 && m.To[0] == to {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no email to %s arrived within %s", to, timeout)
		}
	}
}

// get fetches path with the operators' password, returning status and body.
func (b *devBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	req.SetBasicAuth("dev", devToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// stop sends SIGTERM and expects exit status 0 within a few seconds.
func (b *devBundle) stop(t *testing.T) {
	t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("retain dev exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("retain dev did not stop within 10 s of SIGTERM")
	}
}

func TestDevSendsTheDemoWelcomeToItsInboxAndStopsOnSIGTERM(t *testing.T) {
	retainBinary(t) // built before the clock starts
	start := time.Now()
	b := runDevProcess(t, "--port", "0", "--speed", "1")
	if ready := time.Since(start); ready > 2*time.Second {
		t.Errorf("retain dev took %s to be ready, want under 2 s", ready)
	}
	t.Logf("ready %s after exec; it printed %q", time.Since(start).Round(time.Millisecond), b.out.waitFor(t, regexp.MustCompile(`ready in \S+`), 0)[0])
	m := b.waitMessage(t, "sanne.devries@example.com", 20*time.Second)
	if m.Subject != "Welkom bij Acme, Sanne" {
		t.Errorf("the first demo email's subject is %q, want the Dutch welcome", m.Subject)
	}
	if from := strings.Join(m.Header["From"], ""); from != `"Femke from Acme" <femke@acme.example>` { // onboarding's from:
		t.Errorf("From: %q", from)
	}
	if to := strings.Join(m.Header["To"], ""); !strings.Contains(to, "sanne.devries@example.com") {
		t.Errorf("To: %q", to)
	}
	if !strings.Contains(m.Text, "Hoi Sanne") || !strings.Contains(m.HTML, "Sanne") {
		t.Errorf("the welcome's parts are not the Dutch variant:\n%s", m.Text)
	}
	// The terminal says what happens: one line per email sent.
	b.out.waitFor(t, regexp.MustCompile(`(?m)  sent  onboarding/welcome to demo-sanne$`), 5*time.Second)
	if out := b.out.String(); strings.Contains(out, "%!") {
		t.Errorf("retain dev printed a bad format:\n%s", out)
	}
	if !strings.Contains(strings.Join(m.Header["List-Unsubscribe"], ""), b.base+"/u/") {
		t.Errorf("List-Unsubscribe %q does not lead to retain dev", m.Header["List-Unsubscribe"])
	}
	if code, page := b.get(t, "/inbox/"); code != http.StatusOK || !strings.Contains(page, "Welkom bij Acme, Sanne") {
		t.Errorf("the inbox page (%d) does not list the welcome:\n%s", code, page)
	}
	if code, _ := b.get(t, "/campaigns"); code != http.StatusOK {
		t.Errorf("/campaigns answers %d, want 200", code)
	}
	b.stop(t)
}

func TestDevReloadsAChangeThatLintsAndKeepsTheLastGoodOneOtherwise(t *testing.T) {
	project := t.TempDir()
	for _, dir := range []string{"campaigns", "templates"} {
		if err := os.CopyFS(filepath.Join(project, dir), os.DirFS(filepath.Join("..", "..", dir))); err != nil {
			t.Fatal(err)
		}
	}
	b := runDevProcess(t, "--port", "0", "--demo=false", "--campaigns", project)
	step := filepath.Join(project, "campaigns", "onboarding", "02-first-project.md")
	good, err := os.ReadFile(step)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(step, []byte(strings.Replace(string(good), "delay:", "dealy:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	b.out.waitFor(t, regexp.MustCompile(`not reloaded: the change has 1 problem`), 5*time.Second)
	b.out.waitFor(t, regexp.MustCompile(`02-first-project\.md:\d+:\d+: unknown key "dealy"`), time.Second)
	// The last version that linted keeps serving, and the pages say what is wrong.
	code, page := b.get(t, "/campaigns")
	if code != http.StatusOK || !strings.Contains(page, "Onboarding") || !strings.Contains(page, "dealy") || !strings.Contains(page, "did not load this change") {
		t.Errorf("/campaigns (%d) should list the running campaigns and the refused change's problem:\n%s", code, page)
	}
	if _, page := b.get(t, "/inbox/"); !strings.Contains(page, "dealy") {
		t.Errorf("the inbox page does not show the refused change:\n%s", page)
	}

	if err := os.WriteFile(step, good, 0o644); err != nil {
		t.Fatal(err)
	}
	b.out.waitFor(t, regexp.MustCompile(`reloaded: 8 campaigns`), 5*time.Second)
	if _, page := b.get(t, "/inbox/"); strings.Contains(page, "dealy") {
		t.Errorf("the inbox page still shows the fixed problem:\n%s", page)
	}
	b.stop(t)
}
