package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// TestInsertDefaults covers what sqlstore's Insert adds to the contract
// (jobstest.ExerciseStore has the round trip): defaults for id, state and
// creation time, and ErrBadInput for a row it could not keep consistent.
func TestInsertDefaults(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	j := &jobs.Job{Host: "h", Session: "s", Command: "true"}
	insert(t, db, j)
	if j.ID == "" || j.State != jobs.StateQueued || j.CreatedAt.IsZero() {
		t.Fatalf("defaults not applied: %+v", j)
	}
	if got := get(t, db, j.ID); got.State != jobs.StateQueued || !got.CreatedAt.Equal(time.UnixMilli(j.CreatedAt.UnixMilli())) {
		t.Fatalf("defaults not stored: %+v", got)
	}
	for _, bad := range []*jobs.Job{
		{Host: "h", Session: "s", State: "done"},
		{Host: "", Session: "s"},
		{Host: "h", Session: "s", OutputBytes: 5},
	} {
		if err := db.Insert(ctx, bad); !errors.Is(err, jobs.ErrBadInput) {
			t.Errorf("Insert(%+v) = %v, want ErrBadInput", bad, err)
		}
	}
}

// TestTransitionErrors: sqlstore's refusals name the state the job is in
// (the tool answer passes it on), and an unknown state is bad input.
func TestTransitionErrors(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	j := insert(t, db, newJob("h", "s", "o", jobs.StateSucceeded))
	_, err := db.Transition(ctx, j.ID, jobs.StateRunning, jobs.Update{})
	if !errors.Is(err, jobs.ErrTransition) || !strings.Contains(err.Error(), "job is succeeded") {
		t.Errorf("refused transition: %v, want ErrTransition naming the state", err)
	}
	if _, err := db.Transition(ctx, j.ID, "bogus", jobs.Update{}); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("unknown state: err = %v, want ErrBadInput", err)
	}
	if _, err := db.End(ctx, j.ID, "o", jobs.StateRunning, jobs.Update{}); !errors.Is(err, jobs.ErrBadInput) {
		t.Errorf("End to a non-final state: err = %v, want ErrBadInput", err)
	}
}

// TestClaimRace has two processes' stores on one file claim from many
// goroutines: every job is claimed exactly once, and no session ever runs two
// shell jobs at once.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "race.db")
	dbs := []*DB{openAt(t, path), openAt(t, path)}
	const sessions, perSession, workers = 8, 25, 6
	var all []string
	for i := range perSession {
		for s := range sessions {
			j := newJob("h", fmt.Sprintf("s%d", s), "o", jobs.StateQueued)
			insert(t, dbs[i%2], j)
			all = append(all, j.ID)
		}
	}

	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		busy    [sessions]atomic.Int32
		done    atomic.Int32
		wg      sync.WaitGroup
		errs    = make(chan error, 2*workers)
	)
	for _, db := range dbs {
		for w := range workers {
			wg.Go(func() {
				for s := w % sessions; done.Load() < int32(len(all)); s = (s + 1) % sessions {
					j, err := db.Claim(ctx, "o", "h", fmt.Sprintf("s%d", s), time.Now(), time.Now().Add(time.Minute))
					if err != nil {
						errs <- err
						return
					}
					if j == nil {
						continue
					}
					if busy[s].Add(1) != 1 {
						errs <- fmt.Errorf("session s%d runs two jobs at once", s)
					}
					mu.Lock()
					claimed[j.ID]++
					mu.Unlock()
					busy[s].Add(-1)
					if _, err := db.Transition(ctx, j.ID, jobs.StateSucceeded, jobs.Update{}); err != nil {
						errs <- err
						return
					}
					done.Add(1)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range all {
		if claimed[id] != 1 {
			t.Errorf("job %s claimed %d times", id, claimed[id])
		}
	}
	if len(claimed) != len(all) {
		t.Errorf("%d jobs claimed, want %d", len(claimed), len(all))
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	cut := base.Add(time.Hour)
	var old, keep []*jobs.Job
	for i := range 2*pruneBatch + 5 {
		j := newJob("h", "s", "o", jobs.StateSucceeded)
		j.EndedAt = cut.Add(-time.Minute)
		old = append(old, insert(t, db, j))
		if err := db.AppendOutput(ctx, []jobs.Chunk{{JobID: j.ID, Data: []byte(fmt.Sprint("out ", i))}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	recent := newJob("h", "s", "o", jobs.StateFailed)
	recent.EndedAt = cut.Add(time.Minute)
	running := newJob("h", "s", "o", jobs.StateRunning)
	keep = append(keep, insert(t, db, recent), insert(t, db, running))
	// A final job without an end time counts from its creation.
	noEnd := newJob("h", "s", "o", jobs.StateError)
	old = append(old, insert(t, db, noEnd))

	n, err := db.Prune(ctx, cut)
	if err != nil || n != int64(len(old)) {
		t.Fatalf("Prune = %d, %v; want %d", n, err, len(old))
	}
	for _, j := range old {
		if _, err := db.Get(ctx, j.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("pruned job %s: %v", j.ID, err)
		}
	}
	for _, j := range keep {
		get(t, db, j.ID)
	}
	var chunks int
	if err := db.r.QueryRow("SELECT count(*) FROM output_chunks").Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("%d chunks left after pruning (%v)", chunks, err)
	}
}
