package storetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stepup-go/stepup"
)

// Child processes are the test binary run again: Main, called first in
// TestMain, sees roleEnv and plays the role instead of running the tests.
// Parent and child talk in lines: the child's lines to the parent start
// with linePrefix on its standard output, the parent's lines go to its
// standard input.
const (
	roleEnv    = "STEPUP_STORETEST_ROLE"
	linePrefix = "storetest> "
)

// expectTimeout bounds every wait for a child's line, so a broken store
// fails the test instead of hanging it.
const expectTimeout = 2 * time.Minute

// Role is what a child process does with the store it opened.
type Role func(ctx context.Context, c *Child) error

// Child is a child process's side of the conversation.
type Child struct {
	// Store is the store the child opened.
	Store stepup.Store
	in    *bufio.Scanner
	mu    sync.Mutex
}

// Say sends the parent a line.
func (c *Child) Say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(os.Stdout, linePrefix+format+"\n", args...)
}

// Await waits for the parent to send line.
func (c *Child) Await(line string) error {
	if !c.in.Scan() {
		return fmt.Errorf("waiting for %q: the parent closed standard input", line)
	}
	if got := c.in.Text(); got != line {
		return fmt.Errorf("waiting for %q: got %q", line, got)
	}
	return nil
}

// Main plays the role the environment names, if any, with the store open
// returns, and exits: status 0 when the role returned nil, 1 otherwise.
// When the process is not a child it returns at once. roles adds to the
// built-in roles, "increment" and "storm".
func Main(open func() (stepup.Store, error), roles map[string]Role) {
	name := os.Getenv(roleEnv)
	if name == "" {
		return
	}
	role := roles[name]
	if role == nil {
		role = builtinRole(name)
	}
	if role == nil {
		fmt.Fprintf(os.Stderr, "storetest: unknown role %q\n", name)
		os.Exit(2)
	}
	st, err := open()
	if err != nil {
		fmt.Fprintf(os.Stderr, "storetest: opening the store: %v\n", err)
		os.Exit(1)
	}
	c := &Child{Store: st, in: bufio.NewScanner(os.Stdin)}
	if err := role(context.Background(), c); err != nil {
		fmt.Fprintf(os.Stderr, "storetest: role %s: %v\n", name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func builtinRole(name string) Role {
	switch name {
	case "increment":
		return incrementRole
	case "storm":
		return stormRole
	}
	return nil
}

// StartTogether starts n children playing role, waits until each says
// "ready", then sends each "go".
func StartTogether(t testing.TB, n int, role string, env ...string) []*Proc {
	t.Helper()
	children := make([]*Proc, n)
	for i := range children {
		children[i] = Start(t, role, env...)
	}
	for _, c := range children {
		c.Expect("ready")
	}
	for _, c := range children {
		c.Send("go")
	}
	return children
}

// Proc is a running child process, seen from the test.
type Proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr syncBuffer
	done   chan struct{} // closed when the test reads no more lines
	once   sync.Once
	exited chan struct{}
	err    error // of Wait, set before exited is closed
}

// Start runs the test binary as a child playing role, with env added to
// this process's environment. The child is killed when the test ends, if
// it is still running.
func Start(t testing.TB, role string, env ...string) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	p := &Proc{t: t, lines: make(chan string, 64), done: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	p.cmd.Stderr = &p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("storetest: starting a child: %v", err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.stopReading()
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// read passes the child's lines on, then waits for the child to exit: Wait
// must not run before the pipe is read to its end.
func (p *Proc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), linePrefix); ok {
			select {
			case p.lines <- line:
			case <-p.done: // the test reads no more: drop it
			}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	close(p.lines)
	p.err = p.cmd.Wait()
	close(p.exited)
}

func (p *Proc) stopReading() { p.once.Do(func() { close(p.done) }) }

// Expect waits for the child's next line, which must start with prefix,
// and returns the rest of it.
func (p *Proc) Expect(prefix string) string {
	p.t.Helper()
	timer := time.NewTimer(expectTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.exited
			p.t.Fatalf("storetest: child exited (%v) while the test expected %q; its stderr:\n%s", p.err, prefix, p.stderr.String())
		}
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			p.t.Fatalf("storetest: child said %q, the test expected %q", line, prefix)
		}
		return strings.TrimSpace(rest)
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("storetest: no %q from the child in %s; its stderr:\n%s", prefix, expectTimeout, p.stderr.String())
	}
	return ""
}

// Send sends the child a line.
func (p *Proc) Send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("storetest: writing to the child: %v", err)
	}
}

// Wait waits for the child to exit, which it must do with status 0.
func (p *Proc) Wait() {
	p.t.Helper()
	p.stdin.Close()
	p.stopReading()
	timer := time.NewTimer(expectTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.err != nil {
		p.t.Fatalf("storetest: child: %v; its stderr:\n%s", p.err, p.stderr.String())
	}
}

// Signal sends the child sig.
func (p *Proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("storetest: signalling the child: %v", err)
	}
}

// Kill kills the child with SIGKILL and waits until it is gone.
func (p *Proc) Kill() {
	p.t.Helper()
	p.Signal(os.Kill)
	p.stopReading()
	<-p.exited
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) {
		p.t.Fatalf("storetest: the killed child: %v", p.err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && !ws.Signaled() {
		p.t.Fatalf("storetest: the child exited (%v) before it was killed; its stderr:\n%s", p.err, p.stderr.String())
	}
}

// syncBuffer is a bytes.Buffer that exec's copying goroutine and the test
// can use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
