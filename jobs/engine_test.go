package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// harness is an engine over a real SQLite file and local processes.
type harness struct {
	t    *testing.T
	path string
	dir  string // the commands' working directory
	db   *sqlstore.DB
	exec *jobstest.LocalExecutor
	eng  *jobs.Engine
}

func newHarness(t *testing.T, path string, mod func(*jobs.Config)) *harness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state", "sshjobs.db")
	}
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, path: path, dir: t.TempDir(), db: db}
	h.exec = &jobstest.LocalExecutor{Dir: h.dir}
	cfg := jobs.Config{Store: db, Executor: h.exec, CancelGrace: 500 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	h.eng, err = jobs.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.eng != nil {
		if err := h.eng.Close(); err != nil {
			h.t.Error(err)
		}
		h.eng = nil
	}
	if h.db != nil {
		h.db.Close()
		h.db = nil
	}
}

func (h *harness) enqueue(session, command string) *jobs.Job {
	h.t.Helper()
	j, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Session: session, Command: command})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// final waits for the job to end.
func (h *harness) final(id string) *jobs.Job {
	h.t.Helper()
	j, err := h.eng.Wait(context.Background(), id, jobs.WaitOptions{Timeout: 20 * time.Second, Offset: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	if !j.State.Final() {
		h.t.Fatalf("job %s (%q) still %s after 20s", id, j.Command, j.State)
	}
	return j
}

// waitOutput waits until job id has printed want.
func (h *harness) waitOutput(id, want string) {
	h.t.Helper()
	if _, err := h.eng.Wait(context.Background(), id, jobs.WaitOptions{Timeout: 10 * time.Second, Offset: int64(len(want) - 1)}); err != nil {
		h.t.Fatal(err)
	}
	if got := h.output(id); got != want {
		h.t.Fatalf("output %q, want %q", got, want)
	}
}

func (h *harness) output(id string) string {
	h.t.Helper()
	out, err := h.eng.Read(context.Background(), id, 0, 1<<30)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(out.Data)
}

func TestRunOutputAndExitCodes(t *testing.T) {
	h := newHarness(t, "", nil)
	for _, tc := range []struct {
		cmd   string
		state jobs.State
		code  int
		out   string
	}{
		{"echo 'Hello World'", jobs.StateSucceeded, 0, "Hello World\n"},
		{"false", jobs.StateFailed, 1, ""},
		{"exit 3", jobs.StateFailed, 3, ""},
		{"printf 'no newline'", jobs.StateSucceeded, 0, "no newline"},
		{"echo oops >&2; exit 2", jobs.StateFailed, 2, "oops\n"},
		{"printf '\\000\\377\\001'", jobs.StateSucceeded, 0, "\x00\xff\x01"},
	} {
		j := h.final(h.enqueue("", tc.cmd).ID)
		if j.State != tc.state || j.ExitCode == nil || *j.ExitCode != tc.code {
			t.Errorf("%q: state %s exit %v, want %s %d (error %q)", tc.cmd, j.State, j.ExitCode, tc.state, tc.code, j.Error)
		}
		if got := h.output(j.ID); got != tc.out {
			t.Errorf("%q: output %q, want %q", tc.cmd, got, tc.out)
		}
		if j.OutputBytes != int64(len(tc.out)) || j.StartedAt.IsZero() || j.EndedAt.Before(j.StartedAt) {
			t.Errorf("%q: output_bytes %d, started %v, ended %v", tc.cmd, j.OutputBytes, j.StartedAt, j.EndedAt)
		}
	}
}

func TestSignalledJobHasNoExitCode(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.final(h.enqueue("", "kill -TERM $$").ID)
	if j.State != jobs.StateFailed || j.ExitCode != nil || j.Signal != "TERM" {
		t.Fatalf("state %s exit %v signal %q; want failed, no exit code, TERM", j.State, j.ExitCode, j.Signal)
	}
}

func TestLargeOutputByteExact(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.final(h.enqueue("", "seq 1 200000").ID)
	var want bytes.Buffer
	for i := 1; i <= 200000; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteByte('\n')
	}
	if got := h.output(j.ID); got != want.String() {
		t.Fatalf("output differs: got %d bytes, want %d", len(got), want.Len())
	}
	// Reads at every offset region, across chunk boundaries.
	for _, off := range []int64{0, 1, 4095, 65535, 65536, 100001, int64(want.Len()) - 1, int64(want.Len())} {
		out, err := h.eng.Read(context.Background(), j.ID, off, 777)
		if err != nil {
			t.Fatal(err)
		}
		end := min(off+777, int64(want.Len()))
		if string(out.Data) != want.String()[off:end] || out.Offset != off {
			t.Fatalf("read at %d: got %q at %d", off, out.Data, out.Offset)
		}
	}
}

func TestSessionRunsJobsInOrder(t *testing.T) {
	h := newHarness(t, "", nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, h.enqueue("s", fmt.Sprintf("sleep 0.05; echo %d >> order", i)).ID)
	}
	var prev *jobs.Job
	for _, id := range ids {
		j := h.final(id)
		if prev != nil && j.StartedAt.Before(prev.EndedAt) {
			t.Errorf("job %s started at %v before the previous one ended at %v", id, j.StartedAt, prev.EndedAt)
		}
		prev = j
	}
	got, _ := os.ReadFile(filepath.Join(h.dir, "order"))
	if string(got) != "0\n1\n2\n3\n4\n" {
		t.Fatalf("order file %q", got)
	}
}

func TestSessionsRunInParallel(t *testing.T) {
	h := newHarness(t, "", nil)
	// Each job waits for the other's file: they finish only if both run at once.
	a := h.enqueue("a", "touch a; i=0; while [ ! -e b ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; test -e b")
	b := h.enqueue("b", "touch b; i=0; while [ ! -e a ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done; test -e a")
	for _, id := range []string{a.ID, b.ID} {
		if j := h.final(id); j.State != jobs.StateSucceeded {
			t.Fatalf("job %s: %s: the sessions did not run at the same time", id, j.State)
		}
	}
}

func TestWaitReturnsOnTimeoutAndJobGoesOn(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.enqueue("", "sleep 0.5; echo done")
	got, err := h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 50 * time.Millisecond, Offset: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Final() {
		t.Fatalf("job ended within 50ms: %s", got.State)
	}
	// A waiter whose request is cancelled changes nothing either.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: time.Minute, Offset: -1}); err != nil {
		t.Fatal(err)
	}
	if j := h.final(j.ID); j.State != jobs.StateSucceeded || h.output(j.ID) != "done\n" {
		t.Fatalf("job after waiters gave up: %s %q", j.State, h.output(j.ID))
	}
}

func TestWaitReturnsWhenOutputPassesOffset(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.enqueue("", "echo first; sleep 5; echo second")
	got, err := h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 4 * time.Second, Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Final() || got.OutputBytes != int64(len("first\n")) {
		t.Fatalf("wait for output: %s, %d bytes", got.State, got.OutputBytes)
	}
	if _, err := h.eng.Cancel(context.Background(), j.ID, "KILL", 0); err != nil {
		t.Fatal(err)
	}
}

func TestInput(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.enqueue("", `read v; echo "You said: $v"`)
	waitState(t, h, j.ID, jobs.StateRunning)
	if err := h.eng.Input(context.Background(), j.ID, []byte("magic\n"), false); err != nil {
		t.Fatal(err)
	}
	if j := h.final(j.ID); j.State != jobs.StateSucceeded || h.output(j.ID) != "You said: magic\n" {
		t.Fatalf("%s %q", j.State, h.output(j.ID))
	}
	if err := h.eng.Input(context.Background(), j.ID, []byte("late\n"), false); !errors.Is(err, jobs.ErrBadInput) {
		t.Fatalf("input to a finished job: %v", err)
	}
}

func TestSpecInput(t *testing.T) {
	h := newHarness(t, "", nil)
	j, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: `read a; read b; echo "$b $a"`, Input: []byte("one\ntwo\n")})
	if err != nil {
		t.Fatal(err)
	}
	if j := h.final(j.ID); j.State != jobs.StateSucceeded || h.output(j.ID) != "two one\n" {
		t.Fatalf("%s %q", j.State, h.output(j.ID))
	}
}

func waitState(t *testing.T, h *harness, id string, s jobs.State) {
	t.Helper()
	for range 200 {
		j, err := h.eng.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == s {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s", id, s)
}

func TestCancel(t *testing.T) {
	h := newHarness(t, "", nil)
	for _, cmd := range []string{"echo $$ > pid; sleep 600", "trap '' INT; echo $$ > pid; sleep 600"} {
		os.Remove(filepath.Join(h.dir, "pid"))
		j := h.enqueue("", cmd)
		queued := h.enqueue("", "echo never")
		waitForFile(t, filepath.Join(h.dir, "pid"))
		if got, err := h.eng.Cancel(context.Background(), queued.ID, "", 0); err != nil || got.State != jobs.StateCancelled {
			t.Fatalf("cancel queued: %v %v", got, err)
		}
		got, err := h.eng.Cancel(context.Background(), j.ID, "INT", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != jobs.StateCancelled {
			t.Fatalf("%q after cancel: %s", cmd, got.State)
		}
		pid, _ := os.ReadFile(filepath.Join(h.dir, "pid"))
		if exec.Command("kill", "-0", strings.TrimSpace(string(pid))).Run() == nil {
			t.Fatalf("%q: process %s still alive after cancel", cmd, pid)
		}
		if h.exec.Started() == 0 || h.output(queued.ID) != "" {
			t.Fatal("the cancelled queued job ran")
		}
		// The session goes on.
		if j := h.final(h.enqueue("", "echo next").ID); j.State != jobs.StateSucceeded {
			t.Fatalf("next job: %s", j.State)
		}
	}
}

func TestKillAfter(t *testing.T) {
	h := newHarness(t, "", nil)
	j, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: "sleep 600", KillAfter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := h.final(j.ID)
	if got.State != jobs.StateCancelled || !strings.Contains(got.Error, "kill_after") {
		t.Fatalf("%s %q", got.State, got.Error)
	}
}

func TestGrep(t *testing.T) {
	h := newHarness(t, "", nil)
	j := h.final(h.enqueue("", "seq 1 30000; printf 'last 123'").ID)
	g, err := h.eng.Grep(context.Background(), j.ID, `^(2999[0-9]|last.*)$`, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := g.Matches
	if g.More || g.Incomplete || len(m) != 11 || m[0].Line != 29990 || m[0].Text != "29990" || m[10].Line != 30001 || m[10].Text != "last 123" {
		t.Fatalf("grep: %+v", g)
	}
	if g.SearchedTo != j.OutputBytes {
		t.Errorf("searched to %d of %d", g.SearchedTo, j.OutputBytes)
	}
	if m[0].Offset != int64(strings.Index(h.output(j.ID), "\n29990\n")+1) {
		t.Fatalf("offset of line 29990: %d", m[0].Offset)
	}
	if g, _ := h.eng.Grep(context.Background(), j.ID, `0$`, 5); !g.More {
		t.Fatal("grep limited to 5 should report more")
	}
	if _, err := h.eng.Grep(context.Background(), j.ID, `(unclosed`, 0); !errors.Is(err, jobs.ErrBadInput) {
		t.Fatalf("bad regexp: %v", err)
	}
}

// A costly pattern over a large output stops at the caller's deadline with
// what it found and where it stopped, instead of running for minutes (issue
// 9, item 17).
func TestGrepBounded(t *testing.T) {
	h := newHarness(t, "", nil)
	// 8 MiB of 100-byte lines, and a match on the first line.
	j := h.final(h.enqueue("", "echo Q; yes $(printf '%099d' 0) | head -c 8388608").ID)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	g, err := h.eng.Grep(ctx, j.ID, `(.{0,100}){10}Q`, 0)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Incomplete || g.SearchedTo <= 0 || g.SearchedTo >= j.OutputBytes {
		t.Errorf("grep: incomplete=%v searched to %d of %d; want a partial search", g.Incomplete, g.SearchedTo, j.OutputBytes)
	}
	if len(g.Matches) != 1 || g.Matches[0].Text != "Q" {
		t.Errorf("matches %+v; want the first line", g.Matches)
	}
	if took > 5*time.Second {
		t.Errorf("grep took %s past a 300ms deadline", took)
	}
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, "", nil)
	ctx := context.Background()
	for _, s := range []jobs.Spec{
		{Host: "local", Command: ""},
		{Host: "local", Command: "echo \x00"},
		{Host: "local", Command: strings.Repeat("x", jobs.MaxCommandBytes+1)},
		{Host: "local", Command: "true", Session: "no spaces"},
		{Host: "", Command: "true"},
		{Host: "local", Command: "true", KillAfter: -time.Second},
	} {
		if _, err := h.eng.Enqueue(ctx, s); !errors.Is(err, jobs.ErrBadInput) {
			t.Errorf("enqueue %.40q: %v, want ErrBadInput", s.Command, err)
		}
	}
	for _, id := range []string{"nope", "0190c5e2-0000-7000-8000-000000000000"} {
		if _, err := h.eng.Get(ctx, id); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("get %q: %v", id, err)
		}
		if _, err := h.eng.Wait(ctx, id, jobs.WaitOptions{Timeout: time.Second}); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("wait %q: %v", id, err)
		}
	}
	j := h.final(h.enqueue("", "echo hi").ID)
	if _, err := h.eng.Read(ctx, j.ID, -1, 10); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("negative offset: %v", err)
	}
	if out, err := h.eng.Read(ctx, j.ID, 1<<40, 10); err != nil || len(out.Data) != 0 {
		t.Errorf("huge offset: %v %q", err, out.Data)
	}
	if _, err := h.eng.Cancel(ctx, j.ID, "HUP", 0); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("bad signal: %v", err)
	}
	if got, err := h.eng.Cancel(ctx, j.ID, "", 0); err != nil || got.State != jobs.StateSucceeded {
		t.Errorf("cancel a finished job: %v %v", got, err)
	}
}

func waitForFile(t *testing.T, path string) {
	t.Helper()
	for range 500 {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && bytes.HasSuffix(b, []byte("\n")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

// TestTwoEnginesAdoptWithoutRunningTwice: a process queued many jobs and
// died; two others start on the same file at once and adopt them. Every job
// runs exactly once.
func TestTwoEnginesAdoptWithoutRunningTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db", "sshjobs.db")
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	marks := t.TempDir()
	var ids []string
	dead := time.Now().Add(-time.Minute)
	for i := range 40 {
		id, _ := uuid.NewV7()
		j := &jobs.Job{ID: id.String(), Host: "local", Target: "local", Session: fmt.Sprintf("s%d", i%4),
			Command: fmt.Sprintf("echo ran >> %s/%d", marks, i), State: jobs.StateQueued,
			Owner: "dead-process", LeaseUntil: dead, CreatedAt: dead}
		if err := db.Insert(context.Background(), j); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	db.Close()

	var wg sync.WaitGroup
	hs := make([]*harness, 2)
	for i := range hs {
		wg.Go(func() { hs[i] = newHarness(t, path, nil) })
	}
	wg.Wait()
	for _, id := range ids {
		if j := hs[0].final(id); j.State != jobs.StateSucceeded {
			t.Fatalf("job %s: %s %q", id, j.State, j.Error)
		}
	}
	for i := range ids {
		if b, _ := os.ReadFile(filepath.Join(marks, strconv.Itoa(i))); string(b) != "ran\n" {
			t.Fatalf("job %d ran %d times", i, strings.Count(string(b), "ran"))
		}
	}
}

// panicky panics for a job whose command is "panic", and runs the others.
type panicky struct{ jobs.Executor }

func (p panicky) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	if j.Command == "panic" {
		t.Started(jobs.Start{})
		var m map[string]int
		m["boom"]++ // a nil map write: a real runtime panic
	}
	return p.Executor.Run(ctx, j, t)
}

// A panic in an executor ends that job error, and the server goes on running
// jobs, also in the same session.
func TestExecutorPanicEndsJobError(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = panicky{c.Executor} })
	j := h.final(h.enqueue("", "panic").ID)
	if j.State != jobs.StateError || !strings.Contains(j.Error, "assignment to entry in nil map") || !strings.Contains(j.Error, "a bug") {
		t.Fatalf("panicking job: %s %q", j.State, j.Error)
	}
	if j := h.final(h.enqueue("", "echo still here").ID); j.State != jobs.StateSucceeded || h.output(j.ID) != "still here\n" {
		t.Fatalf("the next job: %s %q", j.State, h.output(j.ID))
	}
}

// A cancel with grace 0 kills at once a job that ignores the signal; it does
// not wait for the engine's default grace.
func TestCancelGraceZeroKillsAtOnce(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.CancelGrace = time.Minute })
	j := h.enqueue("", "trap '' INT; echo ready; sleep 600")
	h.waitOutput(j.ID, "ready\n")
	got, err := h.eng.Cancel(context.Background(), j.ID, "INT", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != jobs.StateCancelled || got.Signal != "KILL" {
		t.Fatalf("after cancel with grace 0: %s signal %q", got.State, got.Signal)
	}
}

// freshShells reports every job as run in a new shell.
type freshShells struct{ jobs.Executor }

func (f freshShells) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	return f.Executor.Run(ctx, j, startsFresh{t})
}

type startsFresh struct{ jobs.Task }

func (s startsFresh) Started(st jobs.Start) { st.NewShell = true; s.Task.Started(st) }

// new_shell says that the cwd and environment were reset: never for the
// session's first job, which had nothing to reset.
func TestNewShellOnlyAfterEarlierJobs(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = freshShells{c.Executor} })
	first := h.final(h.enqueue("s", "true").ID)
	second := h.final(h.enqueue("s", "true").ID)
	other := h.final(h.enqueue("other", "true").ID)
	if first.NewShell || !second.NewShell || other.NewShell {
		t.Fatalf("new_shell: first %v, second %v, another session's first %v; want false, true, false", first.NewShell, second.NewShell, other.NewShell)
	}
}

// A job that starts on a new shell while later jobs wait behind it still
// says new_shell (review finding: the newest-first list of two held only the
// later jobs).
func TestNewShellWithJobsQueuedBehind(t *testing.T) {
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = freshShells{c.Executor} })
	h.final(h.enqueue("s", "true").ID)
	second := h.enqueue("s", "sleep 0.3")
	third := h.enqueue("s", "true")
	h.enqueue("s", "true")
	if !h.final(second.ID).NewShell || !h.final(third.ID).NewShell {
		t.Fatal("a job with jobs queued behind it did not say new_shell")
	}
}
