package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/internal/redistest"
	"github.com/retainmail/retain/store"
)

// deployFiles are the campaigns the deploy tests start on and then edit.
func deployFiles() map[string]string {
	return map[string]string{
		"lifecycle.yaml":           "stages: [lead, customer]\ntransitions:\n  - {on: signed_up, from: [lead], to: customer}\n",
		"welcome/campaign.md":      "---\nname: Welcome\ntrigger: {stage: customer}\n---\n",
		"welcome/01-welcome.md":    "---\nsubject: Hello\n---\nWelcome aboard.\n",
		"welcome/02-tips.md":       "---\nsubject: Tips\ndelay: 1d\n---\nSome tips.\n",
		"welcome/03-invite.md":     "---\nsubject: Invite\ndelay: 2d\n---\nInvite your team.\n",
		"newsletter/campaign.md":   "---\nname: Newsletter\ntrigger: {stage: customer}\n---\n",
		"newsletter/01-monthly.md": "---\nsubject: News\ndelay: 30d\n---\nNews.\n",
	}
}

// editDeploy renames the welcome step, drops tips, adds a survey and the
// winback campaign, and removes the newsletter.
func editDeploy(files map[string]string) {
	files["welcome/01-welcome-email.md"] = files["welcome/01-welcome.md"]
	delete(files, "welcome/01-welcome.md")
	delete(files, "welcome/02-tips.md")
	files["welcome/04-survey.md"] = "---\nsubject: Survey\ndelay: 7d\n---\nHow are we doing?\n"
	delete(files, "newsletter/campaign.md")
	delete(files, "newsletter/01-monthly.md")
	files["winback/campaign.md"] = "---\nname: Win back\ntrigger: {stage: lead}\n---\n"
	files["winback/01-miss-you.md"] = "---\nsubject: We miss you\n---\nCome back.\n"
}

const wantDeployChanges = "-newsletter (campaign, 1 step); welcome: +welcome-email +survey -welcome (renamed to welcome-email?) -tips; +winback (campaign, 1 step)"

func loadDeployFiles(t *testing.T, files map[string]string) *campaign.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	set, err := campaign.LoadFS(fsys, "campaigns")
	if err != nil {
		t.Fatalf("deploy test campaigns: %v", err)
	}
	return set
}

// slogJSON logs everything to w, one JSON object a line.
func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logLines decodes the JSON log lines written to buf since the last call.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(rec, "time")
		out = append(out, rec)
	}
	buf.Reset()
	return out
}

func TestRecordDeployLogsWhatChangedSinceTheLastStart(t *testing.T) {
	rdb, prefix := redistest.New(t)
	st := store.New(rdb, prefix)
	var buf bytes.Buffer
	log := slogJSON(&buf)
	files := deployFiles()
	before := loadDeployFiles(t, files)

	recordDeploy(t.Context(), log, st, before)
	want := []map[string]any{{"level": "INFO", "msg": "campaigns deployed", "hash": before.Hash(), "campaigns": 2.0, "steps": 4.0}}
	if diff := cmp.Diff(want, logLines(t, &buf)); diff != "" {
		t.Errorf("first start (-want +got):\n%s", diff)
	}

	recordDeploy(t.Context(), log, st, loadDeployFiles(t, files))
	want = []map[string]any{{"level": "DEBUG", "msg": "campaigns unchanged since the last start", "hash": before.Hash()}}
	if diff := cmp.Diff(want, logLines(t, &buf)); diff != "" {
		t.Errorf("start on the same campaigns (-want +got):\n%s", diff)
	}

	editDeploy(files)
	after := loadDeployFiles(t, files)
	recordDeploy(t.Context(), log, st, after)
	want = []map[string]any{{"level": "INFO", "msg": "campaigns changed since the last start",
		"old_hash": before.Hash(), "new_hash": after.Hash(), "changes": wantDeployChanges}}
	if diff := cmp.Diff(want, logLines(t, &buf)); diff != "" {
		t.Errorf("start after the edit (-want +got):\n%s", diff)
	}
}

func TestRecordDeployFailureOnlyWarns(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	var buf bytes.Buffer
	recordDeploy(t.Context(), slogJSON(&buf), store.New(rdb, redistest.Prefix()), loadDeployFiles(t, deployFiles()))
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["msg"] != "could not record the deployed campaigns" || lines[0]["error"] == nil {
		t.Errorf("log = %v, want one warning with the error", lines)
	}
}

// TestWorkerAndSchedulerLogTheDeploy starts the scheduler, then the worker on
// edited campaigns, as a deploy does, and reads their logs.
func TestWorkerAndSchedulerLogTheDeploy(t *testing.T) {
	b := setupProcesses(t, 0)
	dir := t.TempDir()
	write := func(files map[string]string) {
		t.Helper()
		os.RemoveAll(dir)
		for name, data := range files {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files := deployFiles()
	write(files)
	env := []string{"RETAIN_CAMPAIGNS=" + dir}
	out := b.startLogged(t, env, regexp.MustCompile(`msg="scheduler started"`), "scheduler")
	if !strings.Contains(out, `msg="campaigns deployed"`) || !strings.Contains(out, "campaigns=2 steps=4") {
		t.Errorf("the scheduler's first start did not log the deploy:\n%s", out)
	}

	editDeploy(files)
	write(files)
	out = b.startLogged(t, env, regexp.MustCompile(`msg="worker started"`), "worker")
	if !strings.Contains(out, `msg="campaigns changed since the last start"`) || !strings.Contains(out, "changes=\""+wantDeployChanges+"\"") {
		t.Errorf("the worker did not log what the deploy changed:\n%s", out)
	}
}

// startLogged runs `retain args...` until its log matches ready, stops it with
// SIGTERM and returns its output.
func (b *processBundle) startLogged(t *testing.T, env []string, ready *regexp.Regexp, args ...string) string {
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(b.env, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(15 * time.Second); !ready.MatchString(out.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("retain %s did not log %q within 15 s:\n%s", strings.Join(args, " "), ready, out)
		}
	}
	return out.String()
}
