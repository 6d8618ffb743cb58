package jobs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
)

// detachExecutor runs non-detached jobs locally; a detached job starts at
// once and runs until release is closed, or until the engine stops (then it
// stays running remotely, as a real detached job does).
type detachExecutor struct {
	jobstest.LocalExecutor
	release    chan struct{}
	reattached chan string
}

func (x *detachExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	if !j.Detached {
		return x.LocalExecutor.Run(ctx, j, t)
	}
	t.Started(jobs.Start{Attach: "pid=42"})
	return x.follow(ctx, t)
}

func (x *detachExecutor) Reattach(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	x.reattached <- j.Attach
	return x.follow(ctx, t)
}

func (x *detachExecutor) follow(ctx context.Context, t jobs.Task) jobs.Result {
	t.Write([]byte("tick\n"))
	select {
	case c := <-t.Controls():
		return jobs.Result{State: jobs.StateCancelled, Signal: c.Signal}
	case <-x.release:
		code := 0
		return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
	case <-ctx.Done():
		return jobs.Result{State: jobs.StateRunning}
	}
}

func TestDetachedJobFreesSessionAndSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	x := &detachExecutor{release: make(chan struct{}), reattached: make(chan string, 1)}
	h := newHarness(t, path, func(c *jobs.Config) { c.Executor = x; c.Lease = time.Second })
	x.Dir = h.dir
	d, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: "long", Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	// The session runs its next job while the detached one goes on.
	if j := h.final(h.enqueue("", "echo next").ID); j.State != jobs.StateSucceeded {
		t.Fatalf("next job: %s", j.State)
	}
	if j, _ := h.eng.Get(context.Background(), d.ID); j.State != jobs.StateRunning || j.Attach != "pid=42" {
		t.Fatalf("detached job: %s attach %q", j.State, j.Attach)
	}
	h.close() // the server stops; the detached job goes on

	if j := getJob(t, path, d.ID); j.State != jobs.StateRunning {
		t.Fatalf("detached job after shutdown: %s %q", j.State, j.Error)
	}
	time.Sleep(1100 * time.Millisecond) // the lease runs out
	h2 := newHarness(t, path, func(c *jobs.Config) { c.Executor = x })
	if got := <-x.reattached; got != "pid=42" {
		t.Fatalf("reattached with %q", got)
	}
	close(x.release)
	if j := h2.final(d.ID); j.State != jobs.StateSucceeded || h2.output(d.ID) != "tick\ntick\n" {
		t.Fatalf("after re-attach: %s %q", j.State, h2.output(d.ID))
	}
}

func getJob(t *testing.T, path, id string) *jobs.Job {
	t.Helper()
	h := newHarness(t, path, func(c *jobs.Config) { c.NoAdopt = true })
	defer h.close()
	j, err := h.eng.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// A cancel asked for while no server ran a detached job reaches the job when
// a new server re-attaches it.
func TestCancelDeliveredOnReattach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	x := &detachExecutor{release: make(chan struct{}), reattached: make(chan string, 1)}
	h := newHarness(t, path, func(c *jobs.Config) { c.Executor = x; c.Lease = time.Second })
	d, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: "long", Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, h, d.ID, jobs.StateRunning)
	h.close()
	other := newHarness(t, path, func(c *jobs.Config) { c.NoAdopt = true })
	if _, err := other.db.RequestCancel(context.Background(), d.ID); err != nil {
		t.Fatal(err)
	}
	other.close()
	time.Sleep(1100 * time.Millisecond)
	h2 := newHarness(t, path, func(c *jobs.Config) { c.Executor = x })
	<-x.reattached
	if j := h2.final(d.ID); j.State != jobs.StateCancelled || j.Signal != "INT" {
		t.Fatalf("after re-attach with a pending cancel: %s %q %q", j.State, j.Signal, j.Error)
	}
}
