package jobs_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
)

// checkedExecutor checks, as each job starts, that its row is committed
// running, and that no other job of its session runs.
type checkedExecutor struct {
	jobs.Executor
	t       *testing.T
	store   jobs.Store
	running sync.Map // session: *atomic.Int32
}

func (c *checkedExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	n, _ := c.running.LoadOrStore(j.Session, new(atomic.Int32))
	if now := n.(*atomic.Int32).Add(1); now != 1 {
		c.t.Errorf("job %s: %d jobs of session %s run at once", j.ID, now, j.Session)
	}
	defer n.(*atomic.Int32).Add(-1)
	// The store's readers see only what is committed.
	if stored, err := c.store.Get(ctx, j.ID); err != nil || stored.State != jobs.StateRunning || stored.StartedAt.IsZero() {
		c.t.Errorf("job %s about to run, stored as %+v (%v)", j.ID, stored, err)
	}
	return c.Executor.Run(ctx, j, t)
}

// TestJobStoredRunningBeforeItRuns: a job submitted to an idle session is
// stored already claimed, one submitted behind others is claimed by the
// session's worker; either way its row is committed running before its
// command runs, the jobs of a session run one at a time, and each waiter
// gets the end as stored.
func TestJobStoredRunningBeforeItRuns(t *testing.T) {
	var exec *checkedExecutor
	h := newHarness(t, "", func(c *jobs.Config) {
		exec = &checkedExecutor{Executor: c.Executor, t: t, store: c.Store}
		c.Executor = exec
	})
	// One at a time: each finds its session idle.
	for i := range 3 {
		j := h.final(h.enqueue("s", fmt.Sprintf("echo %d", i)).ID)
		if j.State != jobs.StateSucceeded || h.output(j.ID) != fmt.Sprintf("%d\n", i) {
			t.Fatalf("job %d: %s, %q", i, j.State, h.output(j.ID))
		}
		if stored, err := h.db.Get(context.Background(), j.ID); err != nil || !stored.EndedAt.Equal(j.EndedAt) || *stored.ExitCode != *j.ExitCode {
			t.Fatalf("waiter got %+v, stored %+v (%v)", j, stored, err)
		}
	}
	// Many at once, from many callers, on two sessions.
	var wg sync.WaitGroup
	ids := make([]string, 40)
	for i := range ids {
		wg.Go(func() { ids[i] = h.enqueue(fmt.Sprintf("p%d", i%2), fmt.Sprintf("echo %d", i)).ID })
	}
	wg.Wait()
	for _, id := range ids {
		if j := h.final(id); j.State != jobs.StateSucceeded {
			t.Fatalf("job %s: %s %s", id, j.State, j.Error)
		}
	}
}
