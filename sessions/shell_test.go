package sessions

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"golang.org/x/crypto/ssh"
)

// testTask is the engine's side of a job, for tests: it collects output and
// delivers controls.
type testTask struct {
	mu       sync.Mutex
	out      bytes.Buffer
	starts   []jobs.Start
	prompts  []*jobs.Prompt // every Prompt call, nil for "output resumed"
	controls chan jobs.Control
	wrote    chan struct{} // signalled (non-blocking) on every write or prompt
}

func newTestTask() *testTask {
	return &testTask{controls: make(chan jobs.Control, 4), wrote: make(chan struct{}, 1)}
}

func (t *testTask) signal() {
	select {
	case t.wrote <- struct{}{}:
	default:
	}
}

func (t *testTask) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.out.Write(p)
	t.mu.Unlock()
	t.signal()
	return len(p), nil
}
func (t *testTask) Prompt(p *jobs.Prompt) {
	t.mu.Lock()
	t.prompts = append(t.prompts, p)
	t.mu.Unlock()
	t.signal()
}

// Prompts returns the Prompt calls so far.
func (t *testTask) Prompts() []*jobs.Prompt {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*jobs.Prompt(nil), t.prompts...)
}

// waitPrompt waits until the job waits for input, and returns its prompt.
func (t *testTask) waitPrompt(tb testing.TB) jobs.Prompt {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if ps := t.Prompts(); len(ps) > 0 && ps[len(ps)-1] != nil {
			return *ps[len(ps)-1]
		}
		select {
		case <-t.wrote:
		case <-deadline:
			tb.Fatalf("the job never waited for input; output %q, prompts %v", t.Output(), t.Prompts())
		}
	}
}
func (t *testTask) Started(s jobs.Start) {
	t.mu.Lock()
	t.starts = append(t.starts, s)
	t.mu.Unlock()
}
func (t *testTask) Controls() <-chan jobs.Control { return t.controls }
func (t *testTask) Flush(context.Context) error   { return nil }

func (t *testTask) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// waitOutput waits until the output contains s.
func (t *testTask) waitOutput(tb testing.TB, s string) {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for !bytes.Contains([]byte(t.Output()), []byte(s)) {
		select {
		case <-t.wrote:
		case <-deadline:
			tb.Fatalf("output never contained %q; it is %q", s, t.Output())
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dialTest(t testing.TB, s *sshtest.Server) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr(), s.ClientConfig(t))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startTestShell(t testing.TB, s *sshtest.Server) *shell {
	t.Helper()
	client := dialTest(t, s)
	open := func(context.Context) (*ssh.Session, error) { return client.NewSession() }
	sh, err := startShell(context.Background(), open, goSpawn, "default", quietLogger())
	if err != nil {
		t.Fatalf("start shell: %v", err)
	}
	t.Cleanup(sh.close)
	return sh
}

// The core cases straight on a shell, without the pool (TestPoolShells runs
// them through the pool in each shell).
func TestShellDirect(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		sh := startTestShell(t, srv)
		for _, c := range coreCases() {
			task := newTestTask()
			out := sh.run(context.Background(), c.cmd, task)
			if task.Output() != c.want || code(out.Result) != strconv.Itoa(c.code) || out.State != c.state {
				t.Errorf("%s: %q -> output %q exit %s state %s (%s); want %q exit %d state %s",
					c.name, c.cmd, task.Output(), code(out.Result), out.State, out.Error, c.want, c.code, c.state)
			}
		}
	})
}

func testSlog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// A login that swallows what is typed before it is ready (as a login script
// reading the terminal would) still gives a working shell: the init script is
// typed again.
func TestShellStartRetypesInit(t *testing.T) {
	t.Parallel()
	login := filepath.Join(t.TempDir(), "eat-typeahead")
	script := "#!/bin/sh\ntimeout --foreground 0.5 cat >/dev/null\nexec /bin/bash\n"
	if err := os.WriteFile(login, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := sshtest.StartInProcess(t, sshtest.Options{Shell: login})
	sh := startTestShell(t, srv)
	task := newTestTask()
	if out := sh.run(context.Background(), "echo ready", task); task.Output() != "ready\n" || out.State != jobs.StateSucceeded {
		t.Fatalf("echo ready: %q %s %q", task.Output(), out.State, out.Error)
	}
}

// goSpawn is a spawner for shells outside a pool.
func goSpawn(fns ...func()) bool {
	for _, fn := range fns {
		go fn()
	}
	return true
}
