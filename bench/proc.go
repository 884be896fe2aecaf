package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// build compiles the retain command and the sink into out/bin. The retain build
// carries bench/testdata/overlay/cpuprofile.go through -overlay (inert unless
// RETAIN_BENCH_CPUPROFILE is set), so nothing outside bench/ changes on disk.
func build(root, out string) (retainBin, sinkBin string, err error) {
	bin := filepath.Join(out, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", "", err
	}
	overlay := filepath.Join(bin, "overlay.json")
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {
		filepath.Join(root, "cmd/retain/zz_bench_cpuprofile.go"): filepath.Join(root, "bench/testdata/overlay/cpuprofile.go"),
	}})
	if err := os.WriteFile(overlay, ov, 0o644); err != nil {
		return "", "", err
	}
	retainBin, sinkBin = filepath.Join(bin, "retain"), filepath.Join(bin, "sink")
	for _, args := range [][]string{
		{"build", "-overlay", overlay, "-o", retainBin, "./cmd/retain"},
		{"build", "-o", sinkBin, "./bench/sink"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	return retainBin, sinkBin, nil
}

// proc is a child process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// waitLog waits until the process has logged a line holding s.
func (p *proc) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), s) {
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited (%v) before logging %q; see %s", p.name, err, s, p.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not log %q within %s; see %s", p.name, s, timeout, p.log)
}

// stop sends SIGTERM and waits, killing the process after 40 s.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu returns the user+system CPU time the process has used so far.
func (p *proc) cpu() time.Duration { return pidCPU(p.cmd.Process.Pid) }

// pidCPU reads utime+stime of a process from /proc (0 when unreadable).
func pidCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// selfCPU is the harness's own user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sinkProc is a running bench/sink.
type sinkProc struct {
	*proc
	smtpAddr, httpAddr string
}

func startSink(bin, logPath string, delay time.Duration) (*sinkProc, error) {
	cmd := exec.Command(bin, "--delay", delay.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: "sink", cmd: cmd, log: logPath, done: make(chan error, 1)}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("sink: %w", err)
	}
	go func() { p.done <- cmd.Wait() }()
	s := &sinkProc{proc: p}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "smtp="); ok {
			s.smtpAddr = v
		}
		if v, ok := strings.CutPrefix(f, "http="); ok {
			s.httpAddr = v
		}
	}
	if s.smtpAddr == "" || s.httpAddr == "" {
		cmd.Process.Kill()
		return nil, fmt.Errorf("sink printed %q", line)
	}
	return s, nil
}

// sinkStats is what the sink counted since its last reset.
type sinkStats struct {
	Count int   `json:"count"`
	First int64 `json:"first"` // unix ns
	Last  int64 `json:"last"`
	Bytes int64 `json:"bytes"` // message bytes the sink read (headers and body, unstuffed)
}

// perEmail is the mean message size at the sink.
func (st sinkStats) perEmail() int64 {
	if st.Count == 0 {
		return 0
	}
	return st.Bytes / int64(st.Count)
}

func (s *sinkProc) stats() (sinkStats, error) {
	var st sinkStats
	resp, err := http.Get("http://" + s.httpAddr + "/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// span is the time from the first to the last message since the reset.
func (st sinkStats) span() time.Duration { return time.Duration(st.Last - st.First) }

// rate is messages per second from the first to the last message.
func (st sinkStats) rate() float64 {
	if st.Count < 2 || st.Last <= st.First {
		return 0
	}
	return float64(st.Count-1) / st.span().Seconds()
}

func (s *sinkProc) reset() error {
	resp, err := http.Post("http://"+s.httpAddr+"/reset", "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// arrivals returns the arrival time of each recipient's latest message.
func (s *sinkProc) arrivals() (map[string]time.Time, error) {
	resp, err := http.Get("http://" + s.httpAddr + "/arrivals")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rcpt, ns, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseInt(ns, 10, 64)
		out[rcpt] = time.Unix(0, n)
	}
	return out, sc.Err()
}

// waitCount waits until the sink has counted n messages, and a moment longer to
// catch any extra (a message sent twice).
func (s *sinkProc) waitCount(ctx context.Context, n int, timeout time.Duration) (sinkStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := s.stats()
		if err != nil {
			return st, err
		}
		if st.Count >= n {
			time.Sleep(300 * time.Millisecond)
			return s.stats()
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("only %d of %d messages reached the sink within %s", st.Count, n, timeout)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
