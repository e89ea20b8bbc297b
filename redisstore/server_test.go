package redisstore_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envRequireRedis makes a missing redis-server fail the tests instead of
// skipping them; CI sets it.
const envRequireRedis = "STEPUP_REQUIRE_REDIS"

// readyTimeout bounds the wait for redis-server to accept connections.
const readyTimeout = 20 * time.Second

// redisServer is a real redis-server on 127.0.0.1 and a free port, with its
// own folder, stopped when the test ends.
type redisServer struct {
	t      testing.TB
	bin    string
	args   []string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRedis starts redis-server without persistence, with extra
// arguments after the defaults. It skips the test when redis-server is
// not installed, unless STEPUP_REQUIRE_REDIS is set.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(envRequireRedis) != "" {
			t.Fatalf("redis-server not found and %s is set: %v", envRequireRedis, err)
		}
		t.Skip("redis-server not installed (Debian: apt-get install -y redis-server): the Redis store is tested against a real Redis only")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--logfile", "", "--daemonize", "no",
	}, extra...)
	r := &redisServer{t: t, bin: bin, args: args, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			r.Kill()
		}
	})
	return r
}

// start runs redis-server and waits until its log says it accepts
// connections.
func (r *redisServer) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	r.cmd = cmd
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	var log strings.Builder
	go func(ready chan struct{}) {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if ready != nil {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "Ready to accept connections") {
					close(ready)
					ready = nil
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(exited)
	}(ready)
	r.exited = exited
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-exited:
		r.cmd = nil
		r.t.Fatalf("redis-server %v exited before it was ready:\n%s", r.args, log.String())
	case <-timer.C:
		r.Kill()
		r.t.Fatalf("redis-server not ready in %s", readyTimeout)
	}
}

// Kill kills redis-server with SIGKILL, as a crash would, and waits until
// it is gone.
func (r *redisServer) Kill() {
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Restart starts redis-server again on the same port and folder.
func (r *redisServer) Restart() {
	r.t.Helper()
	r.start()
}
