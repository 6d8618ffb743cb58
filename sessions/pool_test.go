package sessions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

var jobSeq atomic.Int64

// Tests that share nothing with others in this process call t.Parallel:
// most of their time is spent waiting for remote shells (sleeps, idle and
// takeover timers), so the package takes about half as long. Not parallel:
// TestPoolCloseWaitsForGoroutines (counts the process's goroutines), the
// sudo tests (they scan the whole process list for the test account's
// password) and the destination tests (t.Setenv).

// newTestPool returns a pool that resolves and dials srv's ssh_config alias
// through the real Resolver and Dialer.
func newTestPool(t testing.TB, srv *sshtest.Server, cfg PoolConfig) *Pool {
	t.Helper()
	cfg.Dialer = &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: srv.SSHConfig}}
	if os.Getenv("SSHJOBS_TEST_LOG") != "" {
		cfg.Logger = testSlog(t)
	}
	p := NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}

// runJob runs command in session on srv through p, with a fresh test task.
func runJob(t testing.TB, p *Pool, srv *sshtest.Server, session, command string) (*testTask, jobs.Result) {
	t.Helper()
	task := newTestTask()
	return task, runTask(p, srv, session, command, task)
}

func runTask(p *Pool, srv *sshtest.Server, session, command string, task *testTask) jobs.Result {
	return runTarget(p, srv.Alias, session, command, task)
}

// runTarget runs command as the engine would: resolved once (the job's
// destination), then run.
func runTarget(p *Pool, target, session, command string, task *testTask) jobs.Result {
	j := &jobs.Job{ID: "job-" + strconv.FormatInt(jobSeq.Add(1), 10), Target: target, Session: session, Command: command}
	d, err := executor(p).ResolveDestination(context.Background(), target)
	if err != nil {
		return jobs.Result{State: jobs.StateError, Error: err.Error()}
	}
	j.Host, j.Destination = d.Key, d.Spec
	return executor(p).Run(context.Background(), j, task)
}

func code(r jobs.Result) string {
	if r.ExitCode == nil {
		return "nil"
	}
	return strconv.Itoa(*r.ExitCode)
}

// coreCase is a command, its exact output and exit code.
type coreCase struct {
	name, cmd, want string
	code            int
	state           jobs.State
}

func coreCases() []coreCase {
	long := strings.Repeat("x", 5000)
	return []coreCase{
		{"echo", "echo 'Hello World'", "Hello World\n", 0, jobs.StateSucceeded},
		{"false", "false", "", 1, jobs.StateFailed},
		{"exit 3 in subshell", "(exit 3)", "", 3, jobs.StateFailed},
		{"dollar", "echo 'Cost is 10$'", "Cost is 10$\n", 0, jobs.StateSucceeded},
		{"heredoc", "cat <<'EOF'\na $b\nEOF", "a $b\n", 0, jobs.StateSucceeded},
		{"heredoc last line", "cat <<EOF\nx\nEOF\n", "x\n", 0, jobs.StateSucceeded},
		{"no newline", "printf 'no newline'", "no newline", 0, jobs.StateSucceeded},
		{"multi-line", "echo one\necho two", "one\ntwo\n", 0, jobs.StateSucceeded},
		{"comment at end", "echo hi # comment", "hi\n", 0, jobs.StateSucceeded},
		{"line continuation", "echo a \\\nb", "a b\n", 0, jobs.StateSucceeded},
		{"trailing backslash", "echo a \\", "a\n", 0, jobs.StateSucceeded},
		{"quotes", `echo "it's" 'a "b"'`, "it's a \"b\"\n", 0, jobs.StateSucceeded},
		{"tab and utf-8", "printf 'a\\tb\\n'; echo 'héllo ✓'", "a\tb\nhéllo ✓\n", 0, jobs.StateSucceeded},
		{"fake markers", `printf '\036E_0123456789abcdef_0_/x\036\n\036P_x\036'; echo after`, "E_0123456789abcdef_0_/x\nP_xafter\n", 0, jobs.StateSucceeded},
		{"long command", "echo " + long, long + "\n", 0, jobs.StateSucceeded},
		{"control bytes in command", "printf '%s\\n' '\x01\x7f'x", "x\n", 0, jobs.StateSucceeded},
		{"stderr", "echo err >&2", "err\n", 0, jobs.StateSucceeded},
		{"progress bar", `printf '10%%\r50%%\r100%%\n'`, "100%\n", 0, jobs.StateSucceeded},
		{"binary", `printf '\377\376\000x\n'`, "\xff\xfex\n", 0, jobs.StateSucceeded},
		{"empty command", "", "", 0, jobs.StateSucceeded},
	}
}

// testCore runs the core cases and the session state cases on p.
func testCore(t *testing.T, p *Pool, srv *sshtest.Server) {
	for _, c := range coreCases() {
		task, res := runJob(t, p, srv, "default", c.cmd)
		if task.Output() != c.want || code(res) != strconv.Itoa(c.code) || res.State != c.state {
			t.Errorf("%s: %q -> output %q exit %s state %s (%s); want %q exit %d state %s",
				c.name, c.cmd, task.Output(), code(res), res.State, res.Error, c.want, c.code, c.state)
		}
	}

	task, res := runJob(t, p, srv, "default", "ls /nonexistent")
	if code(res) != "2" || !strings.Contains(task.Output(), "nonexistent") {
		t.Errorf("ls /nonexistent: exit %s output %q", code(res), task.Output())
	}

	runJob(t, p, srv, "default", "cd /tmp")
	task, res = runJob(t, p, srv, "default", "pwd")
	if task.Output() != "/tmp\n" || res.Cwd != "/tmp" {
		t.Errorf("pwd after cd /tmp: %q, cwd %q", task.Output(), res.Cwd)
	}
	runJob(t, p, srv, "default", "export SJ_X=1")
	if task, _ := runJob(t, p, srv, "default", "echo $SJ_X"); task.Output() != "1\n" {
		t.Errorf("echo $SJ_X after export: %q", task.Output())
	}
}

func TestPoolCore(t *testing.T) {
	t.Parallel()
	opts := sshtest.Options{
		Banner: "WELCOME TO THE TEST SERVER\nLast login: never\n",
		Env: []string{
			`PS1=\[\e[1;32m\]\u@\h \w $ \[\e[0m\]`,
			`PROMPT_COMMAND=printf '\033]0;title\007'; echo prompt-command-output`,
		},
	}
	sshtest.Each(t, opts, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		task, res := runJob(t, p, srv, "default", "echo 'Hello World'")
		if task.Output() != "Hello World\n" || res.State != jobs.StateSucceeded || code(res) != "0" {
			t.Fatalf("first job: %q %s %s (%s)", task.Output(), res.State, code(res), res.Error)
		}
		if len(task.starts) != 1 || !task.starts[0].NewShell {
			t.Errorf("first job starts = %+v, want one NewShell", task.starts)
		}
		testCore(t, p, srv)
		task, _ = runJob(t, p, srv, "default", "true")
		if task.starts[0].NewShell {
			t.Error("a later job reported a new shell")
		}
	})
}

func TestPoolShells(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/bin/sh", "/bin/dash", "/usr/bin/zsh", "/bin/zsh", "/usr/bin/busybox", "/bin/busybox"} {
		t.Run(filepath.Base(path)+path[:4], func(t *testing.T) {
			if _, err := os.Stat(path); err != nil {
				t.Skipf("%s not installed", path)
			}
			srv := sshtest.StartInProcess(t, sshtest.Options{Shell: path})
			p := newTestPool(t, srv, PoolConfig{})
			testCore(t, p, srv)
		})
	}
}

func TestPoolLargeOutput(t *testing.T) {
	t.Parallel()
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		task, res := runJob(t, p, srv, "default", "seq 1 200000")
		if res.State != jobs.StateSucceeded {
			t.Fatalf("seq: %s %s", res.State, res.Error)
		}
		if got := task.Output(); got != want.String() {
			t.Fatalf("seq output differs: %d bytes, want %d", len(got), want.Len())
		}
		task, _ = runJob(t, p, srv, "default", "ls --color=always /")
		if strings.ContainsAny(task.Output(), "\x1b\r") || !strings.Contains(task.Output(), "tmp") {
			t.Fatalf("ls --color=always: %q", task.Output())
		}
	})
}

func TestPoolExit(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		runJob(t, p, srv, "default", "cd /tmp")
		// Like `ssh host 'cmd; exit N'`: the job ends with N, and says that
		// the shell is gone.
		_, res := runJob(t, p, srv, "default", "echo bye; exit 3")
		if res.State != jobs.StateFailed || res.ExitCode == nil || *res.ExitCode != 3 || res.Error != msgShellExited {
			t.Fatalf("exit 3: %s %v %q", res.State, res.ExitCode, res.Error)
		}
		_, res = runJob(t, p, srv, "default", "exit")
		if res.State != jobs.StateSucceeded || res.ExitCode == nil || *res.ExitCode != 0 {
			t.Fatalf("exit: %s %v %q", res.State, res.ExitCode, res.Error)
		}
		task, res := runJob(t, p, srv, "default", "echo again")
		if task.Output() != "again\n" || res.State != jobs.StateSucceeded || !task.starts[0].NewShell {
			t.Fatalf("after exit: %q %s new shell %v", task.Output(), res.State, task.starts)
		}
		if res.Cwd == "/tmp" {
			t.Error("the new shell kept the old cwd")
		}
	})
}

// A shell that exits before it reads the next job's line has not run it: the
// job runs on a new shell instead of ending with the old shell's exit status.
func TestPoolShellGoneBeforeJob(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		// The shell's stdin becomes a pipe that ends in 0.5s: the shell is
		// alive when the next job is typed, and exits without reading it.
		runJob(t, p, srv, "default", "exec 0< <(sleep 0.5)")
		task, res := runJob(t, p, srv, "default", "echo ran")
		if task.Output() != "ran\n" || res.State != jobs.StateSucceeded {
			t.Fatalf("job after the shell exited: %q %s %q", task.Output(), res.State, res.Error)
		}
		if n := len(task.starts); n == 0 || !task.starts[n-1].NewShell {
			t.Errorf("the job did not say that its shell is new: %v", task.starts)
		}
	})
}

// A server that limits sessions per connection (OpenSSH's MaxSessions) gets
// another connection for the sessions past its limit; shells keep their state
// and jobs on them can be cancelled.
func TestPoolMaxSessions(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{MaxSessions: 2}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		for _, name := range []string{"a", "b", "c"} {
			runJob(t, p, srv, name, "cd /tmp && X="+name)
		}
		for _, name := range []string{"a", "b", "c"} {
			task, res := runJob(t, p, srv, name, `echo "$X $PWD"`)
			if got, want := task.Output(), name+" /tmp\n"; got != want || res.State != jobs.StateSucceeded || task.starts[0].NewShell {
				t.Errorf("session %s: %q %s %q, want %q in the same shell", name, got, res.State, res.Error, want)
			}
		}
		if n := srv.Connections(); n != 2 {
			t.Errorf("connections to the server: %d, want 2", n)
		}
		// Signalling a job takes a channel too: on the second connection.
		if res := interruptStarted(t, p, srv, "c", "echo started; sleep 30"); res.State != jobs.StateCancelled || res.Signal != "INT" {
			t.Errorf("cancel in session c: %s %q %q", res.State, res.Signal, res.Error)
		}
	})
}

func TestPoolInputAndCancel(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})

		// Input goes to the command's terminal.
		task := newTestTask()
		done := make(chan error, 1)
		task.controls <- jobs.Control{Input: []byte("hello\n"), Done: done}
		res := runTask(p, srv, "default", "read x; echo got $x", task)
		if task.Output() != "got hello\n" || res.State != jobs.StateSucceeded {
			t.Errorf("read: %q %s %q", task.Output(), res.State, res.Error)
		}
		if err := <-done; err != nil {
			t.Errorf("input delivery: %v", err)
		}

		// INT interrupts the foreground command; the shell lives on.
		task = newTestTask()
		resc := make(chan jobs.Result, 1)
		go func() { resc <- runTask(p, srv, "default", "echo started; sleep 30; echo not reached", task) }()
		task.waitOutput(t, "started\n")
		task.controls <- jobs.Control{Signal: "INT", Grace: 10 * time.Second}
		res = waitResult(t, resc)
		if res.State != jobs.StateCancelled || strings.Contains(task.Output(), "not reached") {
			t.Errorf("INT: %s %q output %q", res.State, res.Error, task.Output())
		}
		t.Logf("INT: %s %s %q", res.State, code(res), res.Error)
		task, res = runJob(t, p, srv, "default", "echo after")
		if task.Output() != "after\n" || task.starts[0].NewShell {
			t.Errorf("after INT: %q new shell %v", task.Output(), task.starts)
		}

		// KILL kills the job's process group; the shell stays.
		task = newTestTask()
		go func() { resc <- runTask(p, srv, "default", "echo started; sleep 30", task) }()
		task.waitOutput(t, "started\n")
		task.controls <- jobs.Control{Signal: "KILL"}
		if res = waitResult(t, resc); res.State != jobs.StateCancelled || res.Signal != "KILL" {
			t.Errorf("KILL: %s %q", res.State, res.Error)
		}
		task, _ = runJob(t, p, srv, "default", "echo after")
		if task.Output() != "after\n" || task.starts[0].NewShell {
			t.Errorf("after KILL: %q new shell %v", task.Output(), task.starts)
		}

		// A command that ignores INT is stopped after the grace.
		task = newTestTask()
		go func() {
			resc <- runTask(p, srv, "default", "trap '' INT; echo started; sleep 30", task)
		}()
		task.waitOutput(t, "started\n")
		task.controls <- jobs.Control{Signal: "INT", Grace: 200 * time.Millisecond}
		if res = waitResult(t, resc); res.State != jobs.StateCancelled {
			t.Errorf("INT ignored: %s %q", res.State, res.Error)
		}
	})
}

// interruptStarted runs command (which prints "started" first) in session,
// sends it INT once it has started, and returns how it ended.
func interruptStarted(t testing.TB, p *Pool, srv *sshtest.Server, session, command string) jobs.Result {
	t.Helper()
	task := newTestTask()
	resc := make(chan jobs.Result, 1)
	go func() { resc <- runTask(p, srv, session, command, task) }()
	task.waitOutput(t, "started\n")
	task.controls <- jobs.Control{Signal: "INT", Grace: 10 * time.Second}
	return waitResult(t, resc)
}

func waitResult(t testing.TB, resc <-chan jobs.Result) jobs.Result {
	t.Helper()
	select {
	case r := <-resc:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not end")
		return jobs.Result{}
	}
}

// TestPoolParallelSessions proves two sessions on one host run at the same
// time: each waits for a file the other creates.
func TestPoolParallelSessions(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		dir := t.TempDir()
		cmd := func(mine, theirs string) string {
			return fmt.Sprintf(`touch %s/%s; i=0; while [ ! -e %s/%s ]; do i=$((i+1)); [ $i -gt 400 ] && exit 1; sleep 0.05; done; echo %s`,
				dir, mine, dir, theirs, mine)
		}
		resc := make(chan string, 2)
		for _, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
			go func() {
				task, res := runJob(t, p, srv, "s-"+pair[0], cmd(pair[0], pair[1]))
				resc <- fmt.Sprintf("%s %s %q", pair[0], res.State, task.Output())
			}()
		}
		got := []string{<-resc, <-resc}
		for _, g := range got {
			if !strings.Contains(g, "succeeded") {
				t.Errorf("parallel sessions: %v", got)
			}
		}
		snap := p.Snapshot()
		if len(snap) != 1 || len(snap[0].Sessions) != 2 {
			t.Errorf("snapshot: %+v", snap)
		}
	})
}

func TestPoolDroppedConnection(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		task := newTestTask()
		resc := make(chan jobs.Result, 1)
		go func() { resc <- runTask(p, srv, "default", "echo started; sleep 30", task) }()
		task.waitOutput(t, "started\n")
		srv.DropConnections()
		res := waitResult(t, resc)
		if res.State != jobs.StateLost || !strings.Contains(res.Error, "connection") {
			t.Fatalf("dropped: %s %q", res.State, res.Error)
		}
		t.Logf("lost: %s", res.Error)
		task, res = runJob(t, p, srv, "default", "echo again")
		if task.Output() != "again\n" || !task.starts[0].NewShell {
			t.Fatalf("after drop: %q %s %q new shell %v", task.Output(), res.State, res.Error, task.starts)
		}
	})
}

func TestPoolKeepaliveDetectsSilentPeer(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{KeepaliveInterval: 100 * time.Millisecond, KeepaliveMax: 3})
		task := newTestTask()
		resc := make(chan jobs.Result, 1)
		go func() { resc <- runTask(p, srv, "default", "echo started; sleep 30", task) }()
		task.waitOutput(t, "started\n")
		srv.SetSilent(true)
		t.Cleanup(func() { srv.SetSilent(false) })
		res := waitResult(t, resc)
		if res.State != jobs.StateLost || !strings.Contains(res.Error, "keepalives unanswered") {
			t.Fatalf("silent: %s %q", res.State, res.Error)
		}
		t.Logf("lost: %s", res.Error)
		srv.SetSilent(false)
		task, res = runJob(t, p, srv, "default", "echo again")
		if task.Output() != "again\n" || !task.starts[0].NewShell {
			t.Fatalf("after silence: %q %s %q", task.Output(), res.State, res.Error)
		}
	})
}

func TestPoolIdleCloseAndSnapshot(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	p := newTestPool(t, srv, PoolConfig{IdleTimeout: 300 * time.Millisecond})
	runJob(t, p, srv, "default", "cd /tmp")
	snap := p.Snapshot()
	if len(snap) != 1 || snap[0].Sessions[0].Cwd != "/tmp" || snap[0].ClosesIn > 300*time.Millisecond {
		t.Fatalf("snapshot: %+v", snap)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Snapshot()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection did not close")
		}
		time.Sleep(20 * time.Millisecond)
	}
	task, _ := runJob(t, p, srv, "default", "pwd")
	if !task.starts[0].NewShell || task.Output() == "/tmp\n" {
		t.Fatalf("after idle close: %q %v", task.Output(), task.starts)
	}
}

func TestPoolClose(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	p := newTestPool(t, srv, PoolConfig{})
	runJob(t, p, srv, "a", "true")
	runJob(t, p, srv, "b", "true")
	key := p.Snapshot()[0].Host
	if err := p.Disconnect(key, "a"); err != nil {
		t.Fatal(err)
	}
	if s := p.Snapshot()[0].Sessions; len(s) != 1 || s[0].Name != "b" {
		t.Fatalf("after closing a: %+v", s)
	}
	if err := p.Disconnect(key, "nope"); err == nil {
		t.Error("closing an unknown session succeeded")
	}
	if err := p.Disconnect(key, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Snapshot()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(p.Snapshot()) > 0 {
		t.Fatal("connection still listed after Close")
	}
	task, res := runJob(t, p, srv, "b", "echo x")
	if task.Output() != "x\n" || !task.starts[0].NewShell {
		t.Fatalf("after close: %q %s", task.Output(), res.Error)
	}
}

func TestPoolConnectError(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	p := newTestPool(t, srv, PoolConfig{})
	j := &jobs.Job{ID: "j1", Target: "nobody@127.0.0.1:1", Session: "default", Command: "true"}
	res := executor(p).Run(context.Background(), j, newTestTask())
	if res.State != jobs.StateError || res.Error == "" {
		t.Fatalf("connect error: %s %q", res.State, res.Error)
	}
	t.Logf("error: %s", res.Error)
}

// executor is the executor the tests run jobs with over p.
func executor(p *Pool) *Executor { return NewExecutor(p, ExecutorConfig{}) }

// Close fails every connection and returns only once every goroutine the
// pool started has ended; afterwards the pool refuses work.
func TestPoolCloseWaitsForGoroutines(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		before := runtime.NumGoroutine()
		p := newTestPool(t, srv, PoolConfig{})
		for _, session := range []string{"a", "b"} {
			if _, res := runJob(t, p, srv, session, "echo hi"); res.State != jobs.StateSucceeded {
				t.Fatalf("session %s: %+v", session, res)
			}
		}
		during := runtime.NumGoroutine()
		p.Close()
		// At once: no goroutine of the pool's is left.
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, fn := range []string{"(*conn).watch", "(*conn).keepalive", "(*shell).readLoop", "(*shell).writeLoop", "(*shell).start.func"} {
			if strings.Contains(stacks, "sessions."+fn) {
				t.Errorf("%s still runs after Close", fn)
			}
		}
		// x/crypto's own goroutines end on their own once the connection is
		// closed; ours have ended when Close returns.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("%d goroutines before, %d with two sessions, %d after Close:\n%s", before, during, n, buf[:runtime.Stack(buf, true)])
		}
		if _, res := runJob(t, p, srv, "a", "echo again"); res.State != jobs.StateError || !strings.Contains(res.Error, "shutting down") {
			t.Errorf("a job after Close: %+v", res)
		}
	})
}
