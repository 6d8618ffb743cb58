package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// countCmd prints n numbered lines, one every 50 ms, then exits 3: long
// enough to be cut in the middle, and its output is known exactly.
func countCmd(n int) string {
	return fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done; exit 3`, n)
}

func countOutput(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// detachAttach is the part of a job's Attach the tests look at.
type detachAttach struct {
	Spool string `json:"spool"`
	PID   int    `json:"pid"`
	PGID  int    `json:"pgid"`
	Start string `json:"start"`
}

func attachOf(t testing.TB, j *jobs.Job) detachAttach {
	t.Helper()
	var a detachAttach
	if err := json.Unmarshal([]byte(j.Attach), &a); err != nil {
		t.Fatalf("job %s attach %q: %v", j.ID, j.Attach, err)
	}
	return a
}

// spoolGone fails t unless the spool folder of a final job goes: it is
// removed right after the job's end is recorded (Result.AfterEnd), so a
// waiter can see the job final a moment before.
func spoolGone(t testing.TB, what, spool string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := os.Stat(spool)
		if os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%sspool %s still there 10 s after the job ended (%v)", what, spool, err)
			return
		}
	}
}

// newDetachPool returns a pool over srv's ssh_config alias, with spools in
// a temporary folder (the test servers run as this user, on this machine).
// newDetachPool returns an executor over a new pool, with its spools in
// spoolDir.
func newDetachPool(t testing.TB, sshConfig, spoolDir string) *sessions.Executor {
	t.Helper()
	cfg := sessions.PoolConfig{
		Dialer: &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: sshConfig}},
	}
	if os.Getenv("SSHJOBS_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := sessions.NewPool(cfg)
	t.Cleanup(p.CloseAll)
	return sessions.NewExecutor(p, sessions.ExecutorConfig{SpoolDir: spoolDir})
}

// engine is an engine over a real SQLite file and a real pool.
type engine struct {
	*jobs.Engine
	db *sqlstore.DB
}

func newDetachEngine(t testing.TB, dbPath string, pool *sessions.Executor, lease time.Duration) *engine {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dbPath, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := jobs.New(jobs.Config{Store: db, Executor: pool, Lease: lease, Heartbeat: lease / 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &engine{Engine: eng, db: db}
	t.Cleanup(e.close)
	return e
}

func (e *engine) close() {
	e.Engine.Close()
	e.db.Close()
}

func (e *engine) enqueue(t testing.TB, target, command string, detached bool) *jobs.Job {
	t.Helper()
	j, err := e.Enqueue(context.Background(), jobs.Spec{Target: target, Host: target, Command: command, Detached: detached})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitFor waits until the job is final, or its output passes offset (when
// offset >= 0).
func (e *engine) waitFor(t testing.TB, id string, offset int64, timeout time.Duration) *jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := e.Wait(context.Background(), id, jobs.WaitOptions{Timeout: time.Until(deadline), Offset: offset})
		if err != nil {
			t.Fatal(err)
		}
		if j.State.Final() || (offset >= 0 && j.OutputBytes > offset) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: still %s with %d bytes after %v; output %q", id, j.State, j.OutputBytes, timeout, e.output(t, id))
		}
	}
}

func (e *engine) output(t testing.TB, id string) string {
	t.Helper()
	out, err := e.Read(context.Background(), id, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return string(out.Data)
}

func exitCode(j *jobs.Job) string {
	if j.ExitCode == nil {
		return "nil"
	}
	return strconv.Itoa(*j.ExitCode)
}

// checkCount checks a finished countCmd(n) job.
func checkCount(t testing.TB, e *engine, j *jobs.Job, n int) {
	t.Helper()
	if got, want := e.output(t, j.ID), countOutput(n); got != want {
		t.Errorf("stored output differs from the job's:\n got %d bytes %q\nwant %d bytes", len(got), got, len(want))
	}
	if j.State != jobs.StateFailed || exitCode(j) != "3" {
		t.Errorf("job %s: state %s exit %s (%s); want failed exit 3", j.ID, j.State, exitCode(j), j.Error)
	}
	if a := attachOf(t, j); a.Spool != "" {
		spoolGone(t, "", a.Spool)
	}
}

func TestDetachedSurvivesDroppedConnection(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		pool := newDetachPool(t, srv.SSHConfig, t.TempDir())
		e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)

		// The session's cwd and exported environment carry into the job.
		e.waitFor(t, e.enqueue(t, srv.Alias, "cd /tmp && export SJ_DETACH=from-session", false).ID, -1, 20*time.Second)
		const n = 60
		d := e.enqueue(t, srv.Alias, `echo "$PWD $SJ_DETACH"; `+countCmd(n), true)
		e.waitFor(t, d.ID, 0, 20*time.Second)

		// The session is free at once: a plain job runs while the detached
		// one goes on.
		next := e.waitFor(t, e.enqueue(t, srv.Alias, "echo next", false).ID, -1, 10*time.Second)
		if next.State != jobs.StateSucceeded || e.output(t, next.ID) != "next\n" {
			t.Fatalf("plain job after a detached one: %s %q (%s)", next.State, e.output(t, next.ID), next.Error)
		}
		if j, _ := e.Get(context.Background(), d.ID); j.State != jobs.StateRunning {
			t.Fatalf("detached job once the next one ended: %s (%s)", j.State, j.Error)
		}

		e.waitFor(t, d.ID, int64(len("/tmp from-session\n"+countOutput(15))), 20*time.Second)
		srv.DropConnections()
		j := e.waitFor(t, d.ID, -1, 60*time.Second)
		got := e.output(t, d.ID)
		if !strings.HasPrefix(got, "/tmp from-session\n") {
			t.Fatalf("detached job did not start in the session's cwd and environment: %q", got)
		}
		j.ID = d.ID
		if rest := strings.TrimPrefix(got, "/tmp from-session\n"); rest != countOutput(n) {
			t.Errorf("output after a dropped connection:\n got %q\nwant %q", rest, countOutput(n))
		}
		if j.State != jobs.StateFailed || exitCode(j) != "3" {
			t.Errorf("state %s exit %s (%s); want failed exit 3", j.State, exitCode(j), j.Error)
		}
		if a := attachOf(t, j); a.PID <= 1 || a.PGID != a.PID || !strings.HasPrefix(a.Start, "proc:") {
			t.Errorf("attach %+v", a)
		} else {
			spoolGone(t, "", a.Spool)
		}
	})
}

// remoteGroup lists the live (not zombie) processes of process group pgid;
// the test servers run on this machine.
func remoteGroup(t testing.TB, pgid int) []string {
	t.Helper()
	out, _ := exec.Command("ps", "-o", "pid=,stat=,args=", "-g", strconv.Itoa(pgid)).Output()
	var live []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(f[1], "Z") {
			live = append(live, l)
		}
	}
	return live
}

func TestDetachedCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		pool := newDetachPool(t, srv.SSHConfig, t.TempDir())
		e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
		// The background sleep ignores INT (an async command of a
		// non-interactive shell): it is killed when the grace period ends.
		d := e.enqueue(t, srv.Alias, "sleep 300 & echo started; sleep 300", true)
		e.waitFor(t, d.ID, 0, 20*time.Second)
		j, err := e.Get(context.Background(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		a := attachOf(t, j)
		if live := remoteGroup(t, a.PGID); len(live) < 3 {
			t.Fatalf("process group %d before cancel: %q", a.PGID, live)
		}
		start := time.Now()
		if _, err := e.Cancel(context.Background(), d.ID, "INT", time.Second); err != nil {
			t.Fatal(err)
		}
		j = e.waitFor(t, d.ID, -1, 20*time.Second)
		t.Logf("cancel took %v", time.Since(start).Round(time.Millisecond))
		if j.State != jobs.StateCancelled || j.Signal != "INT" || j.ExitCode != nil {
			t.Errorf("after cancel: %s signal %q exit %s (%s)", j.State, j.Signal, exitCode(j), j.Error)
		}
		// Killed processes leave the group once the kernel runs them again,
		// which on a loaded machine can be after the job's end was stored
		// (seen: "sleep 300" in state R, dying). 5 s is far below the
		// sleep's 300 s.
		live := remoteGroup(t, a.PGID)
		for deadline := time.Now().Add(5 * time.Second); len(live) > 0 && time.Now().Before(deadline); live = remoteGroup(t, a.PGID) {
			time.Sleep(50 * time.Millisecond)
		}
		if len(live) > 0 {
			t.Errorf("process group %d after cancel: %q", a.PGID, live)
		}
		spoolGone(t, "", a.Spool)
	})
}

func TestDetachedUnwritableSpool(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		// Not even root creates folders in /proc.
		pool := newDetachPool(t, srv.SSHConfig, "/proc/sshjobs-spool")
		e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
		j := e.waitFor(t, e.enqueue(t, srv.Alias, "echo never", true).ID, -1, 20*time.Second)
		if j.State != jobs.StateError || !strings.Contains(j.Error, "/proc/sshjobs-spool/"+j.ID) || !strings.Contains(j.Error, "--spool-dir") {
			t.Errorf("unwritable spool: %s %q", j.State, j.Error)
		}
		t.Logf("error: %s", j.Error)
		if out := e.output(t, j.ID); out != "" {
			t.Errorf("launcher output leaked into the job's: %q", out)
		}
		next := e.waitFor(t, e.enqueue(t, srv.Alias, "echo next", false).ID, -1, 10*time.Second)
		if next.State != jobs.StateSucceeded || e.output(t, next.ID) != "next\n" {
			t.Errorf("session after a failed launch: %s %q", next.State, e.output(t, next.ID))
		}
	})
}
