package jobs_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// stepExecutor runs each job as the steps the test sends for its command:
// a step acts on the job's task and returns the job's result to end it, or
// nil to wait for the next step.
type stepExecutor struct {
	mu    sync.Mutex
	steps map[string]chan func(jobs.Task) *jobs.Result
}

func (x *stepExecutor) ch(command string) chan func(jobs.Task) *jobs.Result {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.steps == nil {
		x.steps = map[string]chan func(jobs.Task) *jobs.Result{}
	}
	c := x.steps[command]
	if c == nil {
		c = make(chan func(jobs.Task) *jobs.Result)
		x.steps[command] = c
	}
	return c
}

func (x *stepExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	c := x.ch(j.Command)
	for {
		select {
		case f := <-c:
			if r := f(t); r != nil {
				return *r
			}
		case <-ctx.Done():
			return jobs.Result{State: jobs.StateLost}
		}
	}
}

// do runs f as the next step of command's job and waits for it.
func (x *stepExecutor) do(command string, f func(jobs.Task)) {
	done := make(chan struct{})
	x.ch(command) <- func(t jobs.Task) *jobs.Result { f(t); close(done); return nil }
	<-done
}

func (x *stepExecutor) write(command, s string) {
	x.do(command, func(t jobs.Task) { t.Write([]byte(s)) })
}

func (x *stepExecutor) flush(command string) error {
	var err error
	x.do(command, func(t jobs.Task) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = t.Flush(ctx)
	})
	return err
}

func (x *stepExecutor) succeed(command string) {
	code := 0
	x.ch(command) <- func(jobs.Task) *jobs.Result { return &jobs.Result{State: jobs.StateSucceeded, ExitCode: &code} }
}

// storageHarness is an engine over a real SQLite file whose busy timeout is
// short, so that a write lock held by another connection makes commits fail
// quickly, and whose output is committed only when a job flushes.
func storageHarness(t *testing.T) (*harness, *stepExecutor) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	db, err := sqlstore.Open(context.Background(), path, sqlstore.Options{BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	x := &stepExecutor{}
	h := &harness{t: t, path: path, db: db}
	h.eng, err = jobs.New(jobs.Config{Store: db, Executor: x, FlushInterval: time.Hour, FlushBytes: 1 << 30, Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h, x
}

// rawDB opens the file the way another program (a sqlite3 shell, a backup)
// would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lock takes the database's write lock from another connection and returns
// the function that releases it.
func lock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := rawDB(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// stored reads all of a job's stored output, passing over what was not
// stored, and returns it with the number of bytes passed over.
func stored(t *testing.T, h *harness, id string) (string, int64) {
	t.Helper()
	var b strings.Builder
	var skipped, off int64
	for i := 0; ; i++ {
		out, err := h.eng.Read(context.Background(), id, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		skipped += out.Skipped
		b.Write(out.Data)
		next := out.Offset + int64(len(out.Data))
		if next >= out.Total || i > 100 {
			return b.String(), skipped
		}
		if next == off {
			t.Fatalf("job %s: read at %d of %d returns nothing: %q so far", id, off, out.Total, b.String())
		}
		off = next
	}
}

func outputLost(t *testing.T, path, id string) int64 {
	t.Helper()
	var n int64
	if err := rawDB(t, path).QueryRow("SELECT output_lost FROM jobs WHERE id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A batch that cannot be committed (the write lock held by another program
// past every retry) is recorded as lost, and the job's later output is still
// stored after it.
func TestFailedCommitKeepsLaterOutput(t *testing.T) {
	h, x := storageHarness(t)
	j := h.enqueue("s", "job")
	x.write("job", "first\n")
	if err := x.flush("job"); err != nil {
		t.Fatalf("flush before the lock: %v", err)
	}
	release := lock(t, h.path)
	x.write("job", "lost\n")
	if err := x.flush("job"); err == nil {
		t.Error("Flush returned no error while the job's output could not be stored")
	}
	release()
	x.write("job", "after\n")
	err := x.flush("job")
	if err == nil {
		t.Error("Flush returned no error although some of the job's output was lost")
	}
	x.succeed("job")
	f := h.final(j.ID)
	if f.State != jobs.StateSucceeded || f.OutputBytes != int64(len("first\nlost\nafter\n")) {
		t.Errorf("job %s: %d bytes; want succeeded with 17", f.State, f.OutputBytes)
	}
	out, skipped := stored(t, h, j.ID)
	if out != "first\nafter\n" || skipped != 5 {
		t.Errorf("stored output %q, %d bytes passed over; want %q, 5", out, skipped, "first\nafter\n")
	}
	if n := outputLost(t, h.path, j.ID); n != 5 || f.OutputLost != 5 {
		t.Errorf("output_lost = %d, Job.OutputLost = %d; want 5", n, f.OutputLost)
	}
}

// A job whose row is gone (deleted by hand) fails its own chunks only: the
// other job whose output was in the same batch keeps all of it.
func TestDeletedJobDoesNotDropOthersOutput(t *testing.T) {
	h, x := storageHarness(t)
	gone := h.enqueue("a", "gone")
	keep := h.enqueue("b", "keep")
	x.write("gone", "g1\n")
	x.write("keep", "k1\n")
	if err := x.flush("keep"); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, h.path)
	if _, err := raw.Exec("DELETE FROM output_chunks WHERE job_id = ?1; DELETE FROM jobs WHERE id = ?1", gone.ID); err != nil {
		t.Fatal(err)
	}
	x.write("gone", "g2\n")
	x.write("keep", "k2\n")
	if err := x.flush("keep"); err != nil {
		t.Errorf("flush of the job that exists: %v", err)
	}
	x.write("keep", "k3\n")
	x.succeed("keep")
	x.succeed("gone")
	f := h.final(keep.ID)
	out, skipped := stored(t, h, keep.ID)
	if f.State != jobs.StateSucceeded || out != "k1\nk2\nk3\n" || skipped != 0 {
		t.Errorf("job %s, output %q (%d passed over); want succeeded, %q", f.State, out, skipped, "k1\nk2\nk3\n")
	}
	if n := outputLost(t, h.path, keep.ID); n != 0 {
		t.Errorf("output_lost = %d, want 0", n)
	}
}

// The end of a job that cannot be recorded (the write lock held by another
// program) is retried until it is, and a waiter learns meanwhile that the
// job ended but its end is not stored, rather than waiting forever.
func TestEndRecordedOnceStorageReturns(t *testing.T) {
	h, x := storageHarness(t)
	j := h.enqueue("s", "job")
	x.write("job", "out\n")
	if err := x.flush("job"); err != nil {
		t.Fatal(err)
	}
	release := lock(t, h.path)
	x.succeed("job")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.eng.Wait(ctx, j.ID, jobs.WaitOptions{Timeout: 5 * time.Second, Offset: -1})
	if err == nil || !strings.Contains(err.Error(), "could not be recorded") {
		t.Errorf("Wait while the end cannot be recorded: %v; want an error saying so", err)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := h.db.Get(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if f.State.Final() {
			if f.State != jobs.StateSucceeded || f.ExitCode == nil || *f.ExitCode != 0 {
				t.Errorf("job %s exit %v; want succeeded 0", f.State, f.ExitCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s 10s after the lock was released", f.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f, err := h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Offset: -1}); err != nil || !f.State.Final() {
		t.Errorf("Wait after the end was recorded: %v, %v", f, err)
	}
	if out, _ := stored(t, h, j.ID); out != "out\n" {
		t.Errorf("stored output %q", out)
	}
}

// Closing the engine (SIGTERM) while the end of a job cannot be recorded
// returns instead of retrying forever.
func TestCloseWhileEndCannotBeRecorded(t *testing.T) {
	h, x := storageHarness(t)
	j := h.enqueue("s", "job")
	x.write("job", "out\n")
	if err := x.flush("job"); err != nil {
		t.Fatal(err)
	}
	lock(t, h.path)
	x.succeed("job")
	time.Sleep(300 * time.Millisecond)
	done := make(chan error, 1)
	eng := h.eng
	h.eng = nil
	go func() { done <- eng.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Close still blocked 5s after it was called (job %s)", j.ID)
	}
}
