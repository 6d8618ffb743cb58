package jobs_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// Waiting on jobs that another process runs leaves nothing behind: only the
// owner wakes their waiters, so their watch entries must go with the waiter.
func TestWatchOfOtherProcessesJobsIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	x := newHarness(t, path, nil)
	y := newHarness(t, path, func(c *jobs.Config) { c.NoAdopt = true })
	var ids []string
	for i := range 3 {
		ids = append(ids, x.enqueue(string(rune('a'+i)), "sleep 600").ID)
	}
	for _, id := range ids {
		waitState(t, x, id, jobs.StateRunning)
		if j, err := y.eng.Wait(context.Background(), id, jobs.WaitOptions{Timeout: 50 * time.Millisecond, Offset: -1}); err != nil || j.State != jobs.StateRunning {
			t.Fatalf("wait: %v %v", j, err)
		}
	}
	if n := y.eng.WatchedJobs(); n != 0 {
		t.Errorf("%d watch entries left after waiting on jobs of another process; want 0", n)
	}
	// Also the owner's own waiters that gave up leave nothing behind.
	if _, err := x.eng.Wait(context.Background(), ids[0], jobs.WaitOptions{Timeout: 50 * time.Millisecond, Offset: -1}); err != nil {
		t.Fatal(err)
	}
	if n := x.eng.WatchedJobs(); n != 0 {
		t.Errorf("%d watch entries left after a waiter gave up; want 0", n)
	}
}

// The input of a queued job that another process adopted (its owner stalled)
// is dropped once the owner learns the job is no longer its own.
func TestInputOfJobAdoptedElsewhereIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshjobs.db")
	st := &stallStore{}
	x := newHarness(t, path, func(c *jobs.Config) { fast(c); st.Store = c.Store; c.Store = st })
	blocker := x.enqueue("", "sleep 600")
	waitState(t, x, blocker.ID, jobs.StateRunning)
	st.stalled.Store(true)
	q, err := x.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Command: "cat", Input: []byte("hello\n")})
	if err != nil {
		t.Fatal(err)
	}
	if n := x.eng.PendingInputs(); n != 1 {
		t.Fatalf("pending inputs %d, want 1", n)
	}
	time.Sleep(400 * time.Millisecond) // the queued job's lease runs out
	y := newHarness(t, path, fast)
	waitState(t, y, q.ID, jobs.StateRunning)
	st.stalled.Store(false)
	time.Sleep(300 * time.Millisecond) // the owner's heartbeats resume
	if n := x.eng.PendingInputs(); n != 0 {
		t.Errorf("pending inputs %d after the job was adopted elsewhere; want 0", n)
	}
	if _, err := y.eng.Cancel(context.Background(), q.ID, "KILL", 0); err != nil {
		t.Fatal(err)
	}
}
