package sqlstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

func openAt(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openTest(t testing.TB) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "sshjobs.db"))
}

// base is a fixed clock start, so that tests control every time.
var base = time.UnixMilli(1_800_000_000_000)

var seq atomic.Int64

// newJob returns a job that Insert accepts, created after every earlier one.
func newJob(host, session, owner string, state jobs.State) *jobs.Job {
	n := seq.Add(1)
	return &jobs.Job{
		ID:        fmt.Sprintf("job-%06d", n),
		Host:      host,
		Target:    "alias-" + host,
		Session:   session,
		Command:   fmt.Sprintf("echo %d", n),
		State:     state,
		Owner:     owner,
		CreatedAt: base.Add(time.Duration(n) * time.Millisecond),
	}
}

func insert(t testing.TB, db *DB, j *jobs.Job) *jobs.Job {
	t.Helper()
	if err := db.Insert(context.Background(), j); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	return j
}

func get(t testing.TB, db *DB, id string) *jobs.Job {
	t.Helper()
	j, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return j
}
