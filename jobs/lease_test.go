package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// stallStore misses heartbeats while stalled, as a process does when the
// laptop sleeps, when it is stopped (Ctrl-Z) or when another process holds
// the write lock across several heartbeats.
type stallStore struct {
	jobs.Store
	stalled atomic.Bool
}

func (s *stallStore) Heartbeat(ctx context.Context, o jobs.OwnerInfo, leaseUntil time.Time) (jobs.Beat, error) {
	if s.stalled.Load() {
		return jobs.Beat{}, errors.New("stalled")
	}
	return s.Store.Heartbeat(ctx, o, leaseUntil)
}

// fast makes leases short, so that several run out within a test.
func fast(c *jobs.Config) {
	c.Lease = 300 * time.Millisecond
	c.Heartbeat = 100 * time.Millisecond
}

// elsewhere records h's engine as a process on another machine, where no pid
// can be checked: only its own heartbeat says it is alive. h must be stalled,
// or its next heartbeat would set its row right.
func elsewhere(t *testing.T, h *harness) {
	t.Helper()
	o := jobs.OwnerInfo{ID: h.eng.Owner(), Hostname: "elsewhere.example", PID: 1, ProcStart: "another-boot pid:[1] 1", StartedAt: time.Now(), Heartbeat: time.Now()}
	if err := h.db.RegisterOwner(context.Background(), o); err != nil {
		t.Fatal(err)
	}
}

// impatient gives up on a silent owner after half a second.
func impatient(c *jobs.Config) { fast(c); c.OwnerGrace = 500 * time.Millisecond }

// An owner whose heartbeat stalls for several leases while its job runs keeps
// the job: the other engine does not end it lost, and it ends with its real
// result. Within the grace its silence proves nothing; past it, an owner on
// this machine whose pid is alive keeps its jobs all the same.
func TestStalledOwnerKeepsRunningJob(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other func(*jobs.Config)
	}{
		{"within grace", fast},
		{"past grace, pid alive", func(c *jobs.Config) { fast(c); c.OwnerGrace = 200 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sshjobs.db")
			st := &stallStore{}
			x := newHarness(t, path, func(c *jobs.Config) { fast(c); st.Store = c.Store; c.Store = st })
			y := newHarness(t, path, tc.other)
			j := x.enqueue("", "sleep 1.5; echo real; exit 3")
			waitState(t, x, j.ID, jobs.StateRunning)
			st.stalled.Store(true)
			time.Sleep(1200 * time.Millisecond) // four leases
			stale, err := y.eng.Get(context.Background(), j.ID)
			if err != nil || stale.LeaseUntil.After(time.Now()) {
				t.Fatalf("after the stall: %v, lease %v; want an expired lease", err, stale.LeaseUntil)
			}
			if gone, err := y.eng.OwnerGone(context.Background(), stale); err != nil || gone {
				t.Errorf("OwnerGone of a stalled owner = %v, %v; want false", gone, err)
			}
			st.stalled.Store(false)
			got := x.final(j.ID)
			if got.State != jobs.StateFailed || got.ExitCode == nil || *got.ExitCode != 3 || x.output(j.ID) != "real\n" {
				t.Fatalf("job of a stalled owner: %s exit %v %q, output %q; want failed, exit 3", got.State, got.ExitCode, got.Error, x.output(j.ID))
			}
		})
	}
}

// When an owner on another machine stalls past the grace, another engine
// ends its running job lost; if the owner was alive after all, its real end
// replaces that lost.
func TestOwnerRealEndWinsOverAdoptersLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	st := &stallStore{}
	x := newHarness(t, path, func(c *jobs.Config) { fast(c); st.Store = c.Store; c.Store = st })
	y := newHarness(t, path, impatient)
	j := x.enqueue("", "sleep 2.5; echo real")
	waitState(t, x, j.ID, jobs.StateRunning)
	st.stalled.Store(true)
	elsewhere(t, x)
	waitState(t, y, j.ID, jobs.StateLost)
	st.stalled.Store(false)
	var got *jobs.Job
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if got, err = y.eng.Get(context.Background(), j.ID); err != nil {
			t.Fatal(err)
		}
		if got.State != jobs.StateLost {
			break
		}
	}
	if got.State != jobs.StateSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.Error != "" || x.output(j.ID) != "real\n" || got.Owner != x.eng.Owner() {
		t.Fatalf("after the owner's real end: %s exit %v %q owner %s, output %q; want succeeded by %s", got.State, got.ExitCode, got.Error, got.Owner, x.output(j.ID), x.eng.Owner())
	}
}

// followExecutor follows detached jobs until release is closed; it "removes
// the spool" (counts) only when Flush says the output is stored by the job's
// owner.
type followExecutor struct {
	release   chan struct{}
	following atomic.Int32
	removed   atomic.Int32
	left      atomic.Int32
}

func (x *followExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	t.Started(jobs.Start{Attach: "pid=42"})
	return x.follow(ctx, t)
}

func (x *followExecutor) Reattach(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	return x.follow(ctx, t)
}

func (x *followExecutor) follow(ctx context.Context, t jobs.Task) jobs.Result {
	x.following.Add(1)
	defer x.following.Add(-1)
	t.Write([]byte("tick\n"))
	select {
	case <-x.release:
		if t.Flush(context.WithoutCancel(ctx)) == nil {
			x.removed.Add(1)
		}
		code := 0
		return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
	case <-ctx.Done():
		x.left.Add(1)
		return jobs.Result{State: jobs.StateRunning}
	}
}

// A detached job re-attached by another engine while its owner stalled: the
// owner notices at its next heartbeat, stops following it and never removes
// its spool; the adopter records the end.
func TestDisownedOwnerStopsFollowing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	release := make(chan struct{})
	xe, ye := &followExecutor{release: release}, &followExecutor{release: release}
	st := &stallStore{}
	x := newHarness(t, path, func(c *jobs.Config) { fast(c); c.Executor = xe; st.Store = c.Store; c.Store = st })
	y := newHarness(t, path, func(c *jobs.Config) { impatient(c); c.Executor = ye })
	d, err := x.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: "long", Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, x, d.ID, jobs.StateRunning)
	st.stalled.Store(true)
	elsewhere(t, x)
	for deadline := time.Now().Add(10 * time.Second); ye.following.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other engine never re-attached the job")
		}
	}
	st.stalled.Store(false)
	time.Sleep(500 * time.Millisecond) // the owner's heartbeats resume
	if n := xe.following.Load(); n != 0 {
		t.Errorf("the owner still follows the job it lost (%d)", n)
	}
	close(release)
	got := y.final(d.ID)
	if got.State != jobs.StateSucceeded || got.Owner != y.eng.Owner() {
		t.Fatalf("detached job: %s %q owner %s; want succeeded by %s", got.State, got.Error, got.Owner, y.eng.Owner())
	}
	time.Sleep(200 * time.Millisecond)
	if r := xe.removed.Load() + ye.removed.Load(); r != 1 || ye.removed.Load() != 1 {
		t.Errorf("spool removed %d times (by the old owner %d, by the adopter %d); want once, by the adopter", r, xe.removed.Load(), ye.removed.Load())
	}
}
