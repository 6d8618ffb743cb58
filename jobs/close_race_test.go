package jobs_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// gatedStore holds InsertClaimed, once its row is stored, until release.
type gatedStore struct {
	jobs.Store
	inserted chan struct{}
	release  chan struct{}
}

func (g *gatedStore) InsertClaimed(ctx context.Context, j *jobs.Job) error {
	err := g.Store.InsertClaimed(ctx, j)
	close(g.inserted)
	<-g.release
	return err
}

// countingExecutor counts the jobs it is given.
type countingExecutor struct {
	jobs.Executor
	runs *atomic.Int32
}

func (c countingExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	c.runs.Add(1)
	return c.Executor.Run(ctx, j, t)
}

// A job submitted as the engine closes is stored claimed (the engine's
// first-job path) but never reaches the executor: it goes back to the
// queue, and the next process runs it at once. It used to end lost
// ("sshjobs stopped while the job ran"), without having run.
func TestJobClaimedAsEngineClosesRunsInTheNext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	gate := &gatedStore{inserted: make(chan struct{}), release: make(chan struct{})}
	var runs atomic.Int32
	first := newHarness(t, path, func(c *jobs.Config) {
		gate.Store = c.Store
		c.Store = gate
		c.Executor = countingExecutor{Executor: c.Executor, runs: &runs}
	})
	type enqueued struct {
		j   *jobs.Job
		err error
	}
	done := make(chan enqueued, 1)
	go func() {
		j, err := first.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Session: "s", Command: "echo ran"})
		done <- enqueued{j, err}
	}()
	<-gate.inserted
	closed := make(chan error, 1)
	go func() { closed <- first.eng.Close() }()
	for !first.eng.Stopping() {
		time.Sleep(time.Millisecond)
	}
	close(gate.release)
	e := <-done
	if e.err != nil {
		t.Fatal(e.err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	first.eng = nil
	if n := runs.Load(); n != 0 {
		t.Errorf("the closing engine gave the job to its executor %d time(s)", n)
	}
	if j, err := first.db.Get(context.Background(), e.j.ID); err != nil || j.State != jobs.StateQueued || !j.StartedAt.IsZero() {
		t.Fatalf("after the close: %+v, %v; want it queued, not started", j, err)
	}
	first.close()

	// The first stopped cleanly: the next takes its queued job at once,
	// not once its lease (15 s) runs out.
	next := newHarness(t, path, nil)
	j := next.final(e.j.ID)
	if j.State != jobs.StateSucceeded || next.output(j.ID) != "ran\n" {
		t.Errorf("in the next engine: %s %q, output %q", j.State, j.Error, next.output(j.ID))
	}
}
