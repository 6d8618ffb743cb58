package jobs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// staleStore is the real store, except that one Get of the job named in
// stale waits until the job has been claimed (its session's worker started
// it) and then returns what it read before: the read of a Cancel that lost
// the race with the claim, as it happens on a loaded machine.
type staleStore struct {
	*sqlstore.DB
	stale  atomic.Pointer[string]
	before func() // runs between the stale read and the wait for the claim
}

func (s *staleStore) Get(ctx context.Context, id string) (*jobs.Job, error) {
	j, err := s.DB.Get(ctx, id)
	if err != nil || s.stale.Load() == nil || *s.stale.Load() != id || j.State != jobs.StateQueued {
		return j, err
	}
	s.stale.Store(nil)
	s.before()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if now, err := s.DB.Get(ctx, id); err == nil && now.State != jobs.StateQueued {
			break
		}
	}
	return j, err
}

// TestCancelQueuedJobClaimedMeanwhile: a job that is claimed between
// Cancel's read (queued) and its cancel is cancelled as a running job: its
// process is stopped. The job was recorded cancelled "before it started"
// while it ran on to its end, holding its session, whose next jobs queued
// behind it (seen under load as jobs stuck for the length of a `sleep 30`
// after a cancel).
func TestCancelQueuedJobClaimedMeanwhile(t *testing.T) {
	st := &staleStore{}
	var h *harness
	h = newHarness(t, "", func(c *jobs.Config) {
		st.DB = c.Store.(*sqlstore.DB)
		c.Store = st
	})
	goFile := filepath.Join(h.dir, "go")
	st.before = func() { os.WriteFile(goFile, []byte("go\n"), 0o600) }
	first := h.enqueue("s", "while [ ! -e go ]; do sleep 0.02; done")
	second := h.enqueue("s", "echo $$ > pid; sleep 600")
	st.stale.Store(&second.ID)

	got, err := h.eng.Cancel(context.Background(), second.ID, "INT", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if j := h.final(first.ID); j.State != jobs.StateSucceeded {
		t.Fatalf("first job: %s", j.State)
	}
	if got.State != jobs.StateCancelled {
		t.Fatalf("after cancel: %s", got.State)
	}
	// Cancel returned the job cancelled: its process must be gone by now,
	// not left to run while the job shows final.
	if b, err := os.ReadFile(filepath.Join(h.dir, "pid")); err == nil {
		if pid := strings.TrimSpace(string(b)); pid != "" && exec.Command("kill", "-0", pid).Run() == nil {
			exec.Command("kill", pid).Run()
			t.Fatalf("the job was recorded %s (%s) but its process %s still ran", got.State, got.Error, pid)
		}
	}
	// The session goes on at once.
	if j := h.final(h.enqueue("s", "echo next").ID); j.State != jobs.StateSucceeded {
		t.Fatalf("next job: %s", j.State)
	}
}
