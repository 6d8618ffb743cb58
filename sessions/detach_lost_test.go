package sessions_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// TestDetachedSpoolKeptWhenOutputLost holds the database's write lock from
// another connection while a detached job prints, past every retry of the
// commit: the job's row says how much output was lost, its later output is
// still stored, and the spool (the only full copy) is kept.
func TestDetachedSpoolKeptWhenOutputLost(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		ctx := context.Background()
		pool := newDetachPool(t, srv.SSHConfig, t.TempDir())
		path := filepath.Join(t.TempDir(), "sshjobs.db")
		db, err := sqlstore.Open(ctx, path, sqlstore.Options{BusyTimeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := jobs.New(jobs.Config{Store: db, Executor: pool})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		e := &engine{Engine: eng, db: db}
		t.Cleanup(e.close)

		// The job prints its next line once the test creates its file (the
		// servers run on this machine).
		dir := t.TempDir()
		next := func(name string) {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		d := e.enqueue(t, srv.Alias, "cd "+dir+" && echo first; until [ -e 1 ]; do sleep 0.05; done; echo lost; until [ -e 2 ]; do sleep 0.05; done; echo after", true)
		e.waitFor(t, d.ID, 0, 20*time.Second)

		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		conn, err := raw.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		next("1")
		// Long enough for the follow to pass "lost" on and for every retry
		// of its commit to fail.
		time.Sleep(4 * time.Second)
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		next("2")

		j := e.waitFor(t, d.ID, -1, 30*time.Second)
		if j.State != jobs.StateSucceeded || j.OutputBytes != int64(len("first\nlost\nafter\n")) || j.OutputLost != int64(len("lost\n")) {
			t.Errorf("job %s (%s): %d bytes, %d lost; want succeeded, 17 bytes, 5 lost", j.State, j.Error, j.OutputBytes, j.OutputLost)
		}
		var got strings.Builder
		for off := int64(0); off < j.OutputBytes; {
			out, err := e.Read(ctx, d.ID, off, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			got.Write(out.Data)
			next := out.Offset + int64(len(out.Data))
			if next == off {
				break
			}
			off = next
		}
		if got.String() != "first\nafter\n" {
			t.Errorf("stored output %q; want %q", got.String(), "first\nafter\n")
		}
		a := attachOf(t, j)
		if _, err := os.Stat(a.Spool); err != nil {
			t.Errorf("spool %s of a job whose output was not all stored: %v", a.Spool, err)
		}
		if !strings.Contains(j.Error, a.Spool) {
			t.Errorf("job error %q does not say where the full output is", j.Error)
		}
	})
}
