package jobstest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// Capabilities says what an executor under ExerciseExecutor does beyond the
// core of the contract. The subtests of a capability it does not declare are
// skipped, saying so.
type Capabilities struct {
	// Sessions: a session is a persistent shell. Its cwd (and environment)
	// carries from one job to the next, Result.Cwd says where the job left it,
	// and Start.NewShell is true exactly when the job got a new shell.
	Sessions bool
	// Detached: Run honours Job.Detached. The detached job calls Started once
	// it runs, and the session is free from then on; the executor keeps a
	// remote copy of the output (a spool) and calls Flush before it reports
	// the end (and would remove that copy). When ctx ends, Run may return a
	// non-final state: the job goes on.
	Detached bool
	// Prompts: the executor reports a terminal that waits for input
	// (Task.Prompt), e.g. a password prompt.
	Prompts bool
	// SignalExitCodes declares a known deviation: the executor sees only a
	// shell's $?, so a command killed by signal n ends failed with exit code
	// 128+n and no Signal, instead of no exit code and Signal set. The
	// "killed by a signal" subtest then checks that weaker form.
	SignalExitCodes bool
	// Known lists known contract violations of the executor: subtest
	// (its name below the suite, as t.Name() spells it, e.g.
	// "output/exit_3") to the reason. Those subtests are skipped, saying
	// why, so that a violation is written down where it is tolerated.
	Known map[string]string

	// Prepare, if set, completes each job after the suite built it (ID,
	// Target, Session, Command, Detached) and resolved it as the engine does
	// (jobs.DestinationResolver): for an executor that needs more on the row.
	Prepare func(j *jobs.Job)
}

// Time limits of the suite. A command the suite expects to end fast has
// runWait to do so; an executor told to stop (cancel, shutdown) has
// stopWait. Both are generous for a loaded machine and far below the
// `sleep 600` the stopped commands would otherwise run.
const (
	runWait  = 15 * time.Second
	stopWait = 5 * time.Second
	// grace is the Control.Grace of the cancel that must escalate to KILL.
	grace = 500 * time.Millisecond
)

// ExerciseExecutor runs the contract of jobs.Executor and jobs.Task (as
// jobs/job.go writes it in prose) against an executor, as subtests of t.
// newExecutor returns a fresh executor for a subtest; the suite does not
// close it (use t.Cleanup). target is the host its jobs name (Job.Target).
//
// The commands are POSIX sh, except the Prompts subtest (bash's read -p). They
// exchange files under t.TempDir(): the executor must run them on this
// machine as this user, as jobstest.LocalExecutor and the sshtest servers do.
//
// The groups of subtests run in parallel, each on an executor of its own and
// in sessions of its own: an executor is meant to run many sessions at once,
// and most of the suite's time is spent waiting for commands.
func ExerciseExecutor(t *testing.T, newExecutor func(t *testing.T) jobs.Executor, target string, caps Capabilities) {
	s := &suite{newExecutor: newExecutor, target: target, caps: caps, root: t.Name() + "/"}
	for _, g := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"output", s.testOutput},
		{"killed by a signal", s.testSignalled},
		{"started", s.testStarted},
		{"controls", s.testControls},
		{"shutdown", s.testShutdown},
		{"sessions", s.testSessions},
		{"detached", s.testDetached},
		{"prompts", s.testPrompts},
	} {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			s.skipKnown(t)
			g.f(t)
		})
	}
}

type suite struct {
	newExecutor func(t *testing.T) jobs.Executor
	target      string
	caps        Capabilities
	root        string // the suite's t.Name(), and "/"
}

// subtest runs f as a subtest of t, unless it is a known violation.
func (s *suite) subtest(t *testing.T, name string, f func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		s.skipKnown(t)
		f(t)
	})
}

func (s *suite) skipKnown(t *testing.T) {
	t.Helper()
	if why, ok := s.caps.Known[strings.TrimPrefix(t.Name(), s.root)]; ok {
		t.Skipf("known contract violation of this executor: %s", why)
	}
}

var seq atomic.Int64

// uniq is unique in this process and across runs: ids and session names
// must not meet a spool or shell left by an earlier run.
func uniq(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(seq.Add(1), 10)
}

// job builds a job as the engine does: accepted for target, then resolved
// once (jobs.DestinationResolver), or with Host = Target.
func (s *suite) job(t *testing.T, x jobs.Executor, session, command string, detached bool) *jobs.Job {
	t.Helper()
	j := &jobs.Job{ID: uniq("sj-"), Target: s.target, Host: s.target, Session: session,
		Command: command, Detached: detached, State: jobs.StateRunning}
	if r, ok := x.(jobs.DestinationResolver); ok {
		ctx, cancel := context.WithTimeout(context.Background(), runWait)
		defer cancel()
		d, err := r.ResolveDestination(ctx, s.target)
		if err != nil {
			t.Fatalf("resolve %q: %v", s.target, err)
		}
		j.Host, j.Destination = d.Key, d.Spec
	}
	if s.caps.Prepare != nil {
		s.caps.Prepare(j)
	}
	return j
}

// running is a Run in progress.
type running struct {
	j      *jobs.Job
	rec    *Recorder
	cancel context.CancelFunc // ends ctx: the engine shuts down
	done   chan jobs.Result
	res    jobs.Result
	ended  bool
}

// start runs j on x in the background. At the end of the subtest it checks
// that the executor made no Task call after Run returned (a late Write is
// output the engine would store after the job's end).
func (s *suite) start(t *testing.T, x jobs.Executor, j *jobs.Job) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{j: j, rec: NewRecorder(), cancel: cancel, done: make(chan jobs.Result, 1)}
	go func() {
		res := x.Run(ctx, j, r.rec)
		r.rec.MarkReturned()
		r.done <- res
	}()
	t.Cleanup(func() {
		cancel()
		if !r.ended {
			return
		}
		calls := r.rec.Calls()
		for i, c := range calls {
			if c.Kind == CallReturned && i != len(calls)-1 {
				t.Errorf("job %q: Task calls after Run returned: %v", j.Command, calls[i+1:])
			}
		}
	})
	return r
}

// wait waits up to d for Run to return.
func (r *running) wait(t *testing.T, d time.Duration) jobs.Result {
	t.Helper()
	if r.ended {
		return r.res
	}
	select {
	case r.res = <-r.done:
		r.ended = true
		return r.res
	case <-time.After(d):
		t.Fatalf("job %q: Run did not return within %s; output %q", r.j.Command, d, r.rec.Output())
	}
	return r.res
}

// returned reports whether Run returned already.
func (r *running) returned() bool {
	if r.ended {
		return true
	}
	select {
	case r.res = <-r.done:
		r.ended = true
	default:
	}
	return r.ended
}

// run runs command in session on x and waits for it to end.
func (s *suite) run(t *testing.T, x jobs.Executor, session, command string) (*Recorder, jobs.Result) {
	t.Helper()
	r := s.start(t, x, s.job(t, x, session, command, false))
	res := r.wait(t, runWait)
	s.checkEnd(t, r)
	return r.rec, res
}

// checkEnd checks what holds for every job that ran and ended: Started
// exactly once and before Run returned, a final state, and a result that
// agrees with itself.
func (s *suite) checkEnd(t *testing.T, r *running) {
	t.Helper()
	name := fmt.Sprintf("job %q", r.j.Command)
	res := r.res
	if n := len(r.rec.Starts()); n != 1 {
		t.Errorf("%s: Started called %d times, want exactly once", name, n)
	}
	if i, ret := index(r.rec.Calls(), CallStarted), index(r.rec.Calls(), CallReturned); i < 0 || i > ret {
		t.Errorf("%s: Started not called before Run returned; calls %v", name, r.rec.Calls())
	}
	if !res.State.Final() && !r.j.Detached {
		t.Errorf("%s: Run returned state %q, not a final state (%s)", name, res.State, res.Error)
	}
	checkResult(t, name, res)
}

// checkResult checks that a result agrees with itself: succeeded is exit 0;
// failed is a non-zero exit code or a signal, not both.
func checkResult(t *testing.T, name string, res jobs.Result) {
	t.Helper()
	switch res.State {
	case jobs.StateSucceeded:
		if res.ExitCode == nil || *res.ExitCode != 0 || res.Signal != "" {
			t.Errorf("%s: succeeded with exit code %s, signal %q; want exit code 0 and no signal", name, codeString(res.ExitCode), res.Signal)
		}
	case jobs.StateFailed:
		byCode := res.ExitCode != nil && *res.ExitCode != 0
		if byCode == (res.Signal != "") {
			t.Errorf("%s: failed with exit code %s, signal %q; want a non-zero exit code or a signal", name, codeString(res.ExitCode), res.Signal)
		}
	}
}

func index(calls []Call, k CallKind) int {
	for i, c := range calls {
		if c.Kind == k {
			return i
		}
	}
	return -1
}

func codeString(c *int) string {
	if c == nil {
		return "none"
	}
	return strconv.Itoa(*c)
}

// testOutput: the exact output (stdout and stderr merged, as a terminal
// shows them) and exit code of a command.
func (s *suite) testOutput(t *testing.T) {
	x := s.newExecutor(t)
	session := uniq("out-")
	long := strings.Repeat("x", 20000)
	cases := []struct {
		name, cmd, want string
		code            int
	}{
		{"echo", "echo 'Hello World'", "Hello World\n", 0},
		{"false", "false", "", 1},
		{"exit 3 in a subshell", "(exit 3)", "", 3},
		{"printf without newline", "printf 'no newline'", "no newline", 0},
		{"stderr merged", "echo out; echo err >&2; echo out2", "out\nerr\nout2\n", 0},
		{"multi-line", "echo one\necho two\n(exit 4)", "one\ntwo\n", 4},
		{"long line", "head -c 20000 /dev/zero | tr '\\000' x; echo", long + "\n", 0},
		// In a session of its own: in a shell session, exit ends the shell
		// as well as the job.
		{"exit 3", "echo bye; exit 3", "bye\n", 3},
	}
	for _, c := range cases {
		s.subtest(t, c.name, func(t *testing.T) {
			session := session
			if strings.Contains(c.cmd, "; exit") {
				session = uniq("exit-") // the others keep their shell
			}
			rec, res := s.run(t, x, session, c.cmd)
			want := jobs.StateSucceeded
			if c.code != 0 {
				want = jobs.StateFailed
			}
			if got := rec.Output(); got != c.want {
				t.Errorf("%q: output %q, want %q", c.cmd, got, c.want)
			}
			if res.State != want || codeString(res.ExitCode) != strconv.Itoa(c.code) || res.Signal != "" {
				t.Errorf("%q: %s, exit code %s, signal %q (%s); want %s, exit code %d, no signal",
					c.cmd, res.State, codeString(res.ExitCode), res.Signal, res.Error, want, c.code)
			}
		})
	}
}

// testSignalled: a command killed by a signal has no exit code, and Signal
// says which (job.go, Job.ExitCode and Job.Signal).
func (s *suite) testSignalled(t *testing.T) {
	x := s.newExecutor(t)
	// The command signals its own process group: the whole job when it is
	// a process group of its own (LocalExecutor), the command's sh when a
	// session's shell runs it as a job (job control); never that shell.
	_, res := s.run(t, x, uniq("sig-"), `sh -c 'kill -TERM 0'`)
	if s.caps.SignalExitCodes {
		t.Logf("known deviation (Capabilities.SignalExitCodes): a command killed by TERM is reported as exit code 143")
		if res.State != jobs.StateFailed || codeString(res.ExitCode) != "143" {
			t.Errorf("killed by TERM: %s, exit code %s, signal %q (%s); want failed with exit code 143",
				res.State, codeString(res.ExitCode), res.Signal, res.Error)
		}
		return
	}
	if res.State != jobs.StateFailed || res.ExitCode != nil || res.Signal != "TERM" {
		t.Errorf("killed by TERM: %s, exit code %s, signal %q (%s); want failed, no exit code, signal TERM",
			res.State, codeString(res.ExitCode), res.Signal, res.Error)
	}
}

// testStarted: Started comes exactly once, once the job began: before its
// first output, while it still runs, and for a job with no output too.
func (s *suite) testStarted(t *testing.T) {
	x := s.newExecutor(t)
	session := uniq("start-")
	s.subtest(t, "before the first write", func(t *testing.T) {
		rec, _ := s.run(t, x, session, "echo one; echo two")
		calls := rec.Calls()
		if w, st := index(calls, CallWrite), index(calls, CallStarted); w < 0 || st < 0 || st > w {
			t.Errorf("Started must come before (or at) the first Write; calls %v", calls)
		}
	})
	s.subtest(t, "no output", func(t *testing.T) {
		s.run(t, x, session, "true") // checkEnd: exactly once, before Run returned
	})
	s.subtest(t, "while the job runs", func(t *testing.T) {
		flag := filepath.Join(t.TempDir(), "go")
		r := s.start(t, x, s.job(t, x, session, waitFor(flag)+"; echo ended", false))
		// The session is warm: the job begins at once, and a broken
		// executor costs stopWait, not runWait.
		if !r.rec.WaitStarted(stopWait) {
			t.Errorf("Started not called while the job runs (it waits for %s)", flag)
		}
		s.touch(t, x, flag)
		r.wait(t, runWait)
		s.checkEnd(t, r)
	})
}

// touch creates file through x, in a helper session (one per executor: each
// new shell costs time).
func (s *suite) touch(t *testing.T, x jobs.Executor, file string) {
	t.Helper()
	if rec, res := s.run(t, x, "suite-helper", "touch '"+file+"'"); res.State != jobs.StateSucceeded {
		t.Errorf("touch %s: %s (%s), output %q", file, res.State, res.Error, rec.Output())
	}
}

// waitFor is a command that waits (up to a minute) for a file to exist.
func waitFor(file string) string {
	return fmt.Sprintf("i=0; while [ ! -e '%s' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done", file)
}

// waitWhile is a command that waits (up to a minute) while a file exists.
func waitWhile(file string) string {
	return fmt.Sprintf("i=0; while [ -e '%s' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done", file)
}

// send delivers c with a Done channel and returns it.
func send(t *testing.T, rec *Recorder, c jobs.Control) chan error {
	t.Helper()
	done := make(chan error, 1)
	c.Done = done
	if !rec.Send(c) {
		t.Fatalf("the controls channel is full: the executor does not drain it")
	}
	return done
}

// replied waits for a control's reply, which must be nil.
func replied(t *testing.T, what string, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: Control.Done received %v, want nil", what, err)
		}
	case <-time.After(stopWait):
		t.Errorf("%s: no reply on Control.Done within %s", what, stopWait)
	}
}

// sleeper is a command that prints ready and then sleeps, in the process
// that printed ready: once ready shows, a signal to the job's process group
// finds it, whatever the shell does between the commands of a list.
func sleeper(prefix string) string {
	return `sh -c "` + prefix + `echo ready; exec sleep 600"`
}

// started starts command in session on x and waits for its "ready".
func (s *suite) started(t *testing.T, x jobs.Executor, session, command string) *running {
	t.Helper()
	r := s.start(t, x, s.job(t, x, session, command, false))
	if !r.rec.WaitOutput(runWait, "ready") {
		t.Fatalf("%q never printed ready; output %q", command, r.rec.Output())
	}
	return r
}

// testControls: the executor drains Controls while the job runs, delivers
// input and cancels, and replies on Done to every control.
func (s *suite) testControls(t *testing.T) {
	x := s.newExecutor(t)
	session := uniq("ctl-")
	s.subtest(t, "input", func(t *testing.T) {
		r := s.started(t, x, session, `echo ready; read a; read b; echo "got $a $b"`)
		replied(t, "input a", send(t, r.rec, jobs.Control{Input: []byte("hello\n")}))
		replied(t, "input b", send(t, r.rec, jobs.Control{Input: []byte("world\n")}))
		res := r.wait(t, runWait)
		s.checkEnd(t, r)
		if !strings.HasSuffix(r.rec.Output(), "got hello world\n") || res.State != jobs.StateSucceeded {
			t.Errorf("after input: %s (%s), output %q; want succeeded, ending in %q", res.State, res.Error, r.rec.Output(), "got hello world\n")
		}
	})
	s.subtest(t, "secret input", func(t *testing.T) {
		r := s.started(t, x, session, `echo ready; read x; echo "length ${#x}"`)
		replied(t, "secret input", send(t, r.rec, jobs.Control{Input: []byte("s3cr3t-word\n"), Secret: true}))
		res := r.wait(t, runWait)
		s.checkEnd(t, r)
		out := r.rec.Output()
		if strings.Contains(out, "s3cr3t") || !strings.Contains(out, "length 11") || res.State != jobs.StateSucceeded {
			t.Errorf("after secret input: %s (%s), output %q; want succeeded, %q, and never the secret", res.State, res.Error, out, "length 11")
		}
	})
	s.subtest(t, "cancel INT", func(t *testing.T) {
		r := s.started(t, x, session, sleeper(""))
		replied(t, "cancel", send(t, r.rec, jobs.Control{Signal: "INT", Grace: 10 * time.Second}))
		res := r.wait(t, stopWait)
		s.checkEnd(t, r)
		if res.State != jobs.StateCancelled {
			t.Errorf("cancel INT: %s (%s), want cancelled", res.State, res.Error)
		}
	})
	s.subtest(t, "cancel INT ignored, killed after grace", func(t *testing.T) {
		r := s.started(t, x, session, sleeper("trap '' INT; "))
		sent := time.Now()
		replied(t, "cancel", send(t, r.rec, jobs.Control{Signal: "INT", Grace: grace}))
		res := r.wait(t, grace+stopWait)
		took := time.Since(sent)
		s.checkEnd(t, r)
		if res.State != jobs.StateCancelled {
			t.Errorf("cancel of a job that ignores INT: %s (%s), want cancelled", res.State, res.Error)
		}
		if took < grace {
			t.Errorf("the job that ignores INT ended %s after the cancel, before its grace of %s", took, grace)
		}
	})
	s.subtest(t, "every control answered", func(t *testing.T) {
		// Input while the command does not read, then a cancel: each gets
		// its reply, none is left for the engine to wait on.
		// In a session of its own: the shell may read the unread input
		// once the job ended.
		r := s.started(t, x, uniq("ctl-"), sleeper(""))
		dones := []chan error{
			send(t, r.rec, jobs.Control{Input: []byte("unread\n")}),
			send(t, r.rec, jobs.Control{Input: []byte("unread\n")}),
			send(t, r.rec, jobs.Control{Signal: "TERM", Grace: 10 * time.Second}),
		}
		for i, d := range dones {
			replied(t, fmt.Sprintf("control %d", i+1), d)
		}
		res := r.wait(t, stopWait)
		s.checkEnd(t, r)
		if res.State != jobs.StateCancelled {
			t.Errorf("cancel TERM: %s (%s), want cancelled", res.State, res.Error)
		}
	})
}

// testShutdown: when ctx ends, Run stops waiting and reports lost promptly;
// never a result it did not see.
func (s *suite) testShutdown(t *testing.T) {
	x := s.newExecutor(t)
	r := s.started(t, x, uniq("lost-"), "echo ready; sleep 600; echo never")
	r.cancel()
	res := r.wait(t, stopWait)
	s.checkEnd(t, r)
	if res.State != jobs.StateLost || res.ExitCode != nil {
		t.Errorf("after ctx ended: %s, exit code %s (%s); want lost, no exit code", res.State, codeString(res.ExitCode), res.Error)
	}
}

// testSessions: a session's shell keeps its cwd between jobs; NewShell says
// when it did not.
func (s *suite) testSessions(t *testing.T) {
	if !s.caps.Sessions {
		t.Skip("the executor does not declare Capabilities.Sessions (persistent shells)")
	}
	x := s.newExecutor(t)
	session := uniq("sess-")
	dir := t.TempDir()
	newShell := func(t *testing.T, rec *Recorder) bool {
		st := rec.Starts()
		return len(st) > 0 && st[0].NewShell
	}
	rec, res := s.run(t, x, session, "cd '"+dir+"'")
	if !newShell(t, rec) {
		t.Errorf("the first job of a session: Start %+v, want NewShell", rec.Starts())
	}
	if res.Cwd != dir {
		t.Errorf("cd %s: Result.Cwd %q", dir, res.Cwd)
	}
	rec, res = s.run(t, x, session, "pwd")
	if rec.Output() != dir+"\n" || res.Cwd != dir {
		t.Errorf("pwd after cd %s: output %q, Result.Cwd %q; want the cwd carried", dir, rec.Output(), res.Cwd)
	}
	if newShell(t, rec) {
		t.Errorf("the second job of a session reported NewShell")
	}
	rec, res = s.run(t, x, uniq("other-"), "pwd")
	if !newShell(t, rec) || rec.Output() == dir+"\n" || res.Cwd == dir {
		t.Errorf("another session: Start %+v, output %q, Result.Cwd %q; want a new shell not in %s", rec.Starts(), rec.Output(), res.Cwd, dir)
	}
	s.run(t, x, session, "exit")
	rec, res = s.run(t, x, session, "pwd")
	if !newShell(t, rec) || res.Cwd == dir {
		t.Errorf("after exit: Start %+v, Result.Cwd %q; want a new shell, cwd reset", rec.Starts(), res.Cwd)
	}
}

// testDetached: a detached job frees its session once Started, calls Flush
// after its last output and before it reports the end, and goes on when ctx
// ends.
func (s *suite) testDetached(t *testing.T) {
	if !s.caps.Detached {
		t.Skip("the executor does not declare Capabilities.Detached")
	}
	x := s.newExecutor(t)
	s.subtest(t, "session free once started", func(t *testing.T) {
		session := uniq("det-")
		flag := filepath.Join(t.TempDir(), "go")
		r := s.start(t, x, s.job(t, x, session, "echo detached; "+waitFor(flag)+"; echo done", true))
		if !r.rec.WaitStarted(runWait) {
			t.Fatalf("the detached job never called Started; output %q", r.rec.Output())
		}
		if _, ok := x.(jobs.Reattacher); ok && r.rec.Starts()[0].Attach == "" {
			t.Errorf("Started of a detached job on a Reattacher carries no Attach data")
		}
		// The session's next job runs (and ends) while the detached job
		// waits: the executor freed the session when it called Started.
		rec, res := s.run(t, x, session, "echo second")
		if rec.Output() != "second\n" || res.State != jobs.StateSucceeded {
			t.Errorf("the session's next job: %s (%s), output %q", res.State, res.Error, rec.Output())
		}
		if r.returned() {
			t.Fatalf("the detached job ended before its flag existed: %+v", r.res)
		}
		s.touch(t, x, flag)
		res = r.wait(t, runWait)
		s.checkEnd(t, r)
		if res.State != jobs.StateSucceeded || r.rec.Output() != "detached\ndone\n" {
			t.Errorf("detached job: %s (%s), output %q", res.State, res.Error, r.rec.Output())
		}
	})
	s.subtest(t, "flush before the end", func(t *testing.T) {
		r := s.start(t, x, s.job(t, x, uniq("det-"), "echo a; sleep 0.2; echo b", true))
		res := r.wait(t, runWait)
		s.checkEnd(t, r)
		if res.State != jobs.StateSucceeded || r.rec.Output() != "a\nb\n" {
			t.Errorf("detached job: %s (%s), output %q", res.State, res.Error, r.rec.Output())
		}
		// Flush after the last Write, before Run returned: else output not
		// yet stored would go with the spool.
		calls := r.rec.Calls()
		lastWrite, lastFlush := -1, -1
		for i, c := range calls {
			switch c.Kind {
			case CallWrite:
				lastWrite = i
			case CallFlush:
				lastFlush = i
			}
		}
		if lastFlush < 0 || lastFlush < lastWrite || lastFlush > index(calls, CallReturned) {
			t.Errorf("Flush must follow the last Write and precede the end; calls %v", calls)
		}
	})
	s.subtest(t, "shutdown leaves it running", func(t *testing.T) {
		// It runs while its file exists: the end of the test removes the
		// file, and the job left behind ends by itself.
		file := filepath.Join(t.TempDir(), "running")
		s.touch(t, x, file)
		r := s.start(t, x, s.job(t, x, uniq("det-"), waitWhile(file)+"; echo done", true))
		if !r.rec.WaitStarted(runWait) {
			t.Fatalf("the detached job never called Started")
		}
		r.cancel()
		res := r.wait(t, stopWait)
		s.checkEnd(t, r)
		if res.State != jobs.StateLost && res.State.Final() || res.ExitCode != nil {
			t.Errorf("detached job after ctx ended: %s, exit code %s (%s); want a non-final state or lost", res.State, codeString(res.ExitCode), res.Error)
		}
	})
}

// testPrompts: a job that waits for a password reports a Prompt; the answer
// typed as secret input is never echoed.
func (s *suite) testPrompts(t *testing.T) {
	if !s.caps.Prompts {
		t.Skip("the executor does not declare Capabilities.Prompts")
	}
	x := s.newExecutor(t)
	r := s.start(t, x, s.job(t, x, uniq("prompt-"), `read -p 'Password: ' -s x; echo; echo "length ${#x}"`, false))
	p := r.rec.WaitPrompt(runWait)
	if p == nil {
		t.Fatalf("no Prompt for read -p 'Password: '; output %q", r.rec.Output())
	}
	if p.Kind != jobs.PromptPassword || !strings.Contains(p.Text, "Password:") {
		t.Errorf("prompt %+v, want kind %s with text %q", *p, jobs.PromptPassword, "Password:")
	}
	replied(t, "password", send(t, r.rec, jobs.Control{Input: []byte("s3cr3t-word\n"), Secret: true}))
	res := r.wait(t, runWait)
	s.checkEnd(t, r)
	if out := r.rec.Output(); res.State != jobs.StateSucceeded || !strings.Contains(out, "length 11") || strings.Contains(out, "s3cr3t") {
		t.Errorf("after the password: %s (%s), output %q", res.State, res.Error, out)
	}
}
