package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server a test started for itself, on a free port, with
// nothing kept on disk unless the test asks for it: for the topologies and
// settings a test must not impose on the shared Redis (replicas, AOF, memory
// policies, crashes).
type Server struct {
	Addr string
	// Dir is its working directory, where its RDB and AOF files are.
	Dir string
	cmd *exec.Cmd
	// path and args start it again on the same port and directory (Restart).
	path string
	args []string
}

// StartServer starts redis-server with args (redis.conf directives as flags,
// such as "--appendonly", "yes") in a temporary directory, waits until it
// answers, and stops it at cleanup. It skips the test when redis-server is not
// installed: scripts/test installs it.
func StartServer(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return launch(tb, serverArgv(args))
}

// serverArgv gives the arguments of StartServer's redis-server: on port of
// 127.0.0.1, in dir, saving nothing, logging to its standard output, then
// args.
func serverArgv(args []string) func(port int, dir string) []string {
	return func(port int, dir string) []string {
		return append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--logfile", ""}, args...)
	}
}

// launch starts redis-server, on a free port of 127.0.0.1 and in a temporary
// directory, with the arguments argv returns for them, waits until it answers,
// and stops it at cleanup. It skips the test when redis-server is not
// installed.
func launch(tb testing.TB, argv func(port int, dir string) []string) *Server {
	tb.Helper()
	redisServerPath(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s, err := launchAt(tb, port, argv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// launchAt starts redis-server on port of 127.0.0.1, in a temporary
// directory, with the arguments argv returns for them, and waits until it
// answers. The server is stopped at cleanup, also when it did not answer
// (the error). It skips the test when redis-server is not installed.
func launchAt(tb testing.TB, port int, argv func(port int, dir string) []string) (*Server, error) {
	tb.Helper()
	path := redisServerPath(tb)
	dir := tb.TempDir()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, path: path, args: argv(port, dir)}
	tb.Cleanup(s.Kill)
	return s, s.start()
}

// redisServerPath returns the path of redis-server, and skips the test when
// it is not installed.
func redisServerPath(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redis-server is not installed (scripts/test installs it)")
	}
	return path
}

// start runs redis-server and waits until it answers PING (once it has loaded
// its data set).
func (s *Server) start() error {
	cmd := exec.Command(s.path, s.args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c.Ping(context.Background()).Err() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Shutdown stops the server cleanly, as an operator's restart does: SHUTDOWN
// writes what persistence is configured (the AOF is flushed and fsynced)
// before the process exits. It returns once the process has exited.
func (s *Server) Shutdown() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	// The connection closes as the server exits: no reply is the success.
	if err := c.Shutdown(context.Background()).Err(); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "connection reset") {
		return fmt.Errorf("SHUTDOWN redis-server on %s: %w", s.Addr, err)
	}
	s.cmd.Wait()
	return nil
}

// Restart starts the server again, after Shutdown or Kill, on the same port
// and directory with the same settings, and returns once it has loaded its
// data set and answers.
func (s *Server) Restart() error {
	return s.start()
}

// Client returns a client of the server, closed at cleanup.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}
