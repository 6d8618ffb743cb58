package sessions_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// endSpy notes, when a job's end is recorded, whether its spool still
// exists then.
type endSpy struct {
	jobs.Store
	mu       sync.Mutex
	spoolAt  map[string]bool // job id -> its spool existed when End came
	spoolDir string
}

func (s *endSpy) End(ctx context.Context, id, owner string, to jobs.State, u jobs.Update) (*jobs.Job, error) {
	_, err := os.Stat(filepath.Join(s.spoolDir, id))
	s.mu.Lock()
	s.spoolAt[id] = err == nil
	s.mu.Unlock()
	return s.Store.End(ctx, id, owner, to, u)
}

// A detached job's spool, which holds its exit code, is removed only once
// its end is recorded. It was removed first: sshjobs killed in between
// (TestSIGKILLDuringOutput in faults saw it) left a job whose output was
// all stored but whose exit code was gone, and the next process ended it
// lost ("the detached job's spool folder ... is gone").
func TestDetachedSpoolOutlivesTheEndRecord(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		spool := t.TempDir()
		pool := newDetachPool(t, srv.SSHConfig, spool)
		db, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "sshjobs.db"), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		spy := &endSpy{Store: db, spoolAt: map[string]bool{}, spoolDir: spool}
		eng, err := jobs.New(jobs.Config{Store: spy, Executor: pool})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		e := &engine{Engine: eng, db: db}
		t.Cleanup(e.close)

		j := e.waitFor(t, e.enqueue(t, srv.Alias, "echo out; exit 4", true).ID, -1, 30*time.Second)
		if j.State != jobs.StateFailed || exitCode(j) != "4" || e.output(t, j.ID) != "out\n" {
			t.Fatalf("job: %s exit %s (%s), output %q", j.State, exitCode(j), j.Error, e.output(t, j.ID))
		}
		spy.mu.Lock()
		existed, ended := spy.spoolAt[j.ID]
		spy.mu.Unlock()
		if !ended || !existed {
			t.Errorf("the spool was gone when the job's end was recorded (end recorded: %v)", ended)
		}
		spoolGone(t, "", attachOf(t, j).Spool)
	})
}
