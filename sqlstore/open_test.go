package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	if p, err := DefaultPath(); err != nil || p != "/state/sshjobs/sshjobs.db" {
		t.Errorf("with XDG_STATE_HOME: %q, %v", p, err)
	}
	t.Setenv("HOME", "/home/u")
	for _, v := range []string{"", "relative/dir"} {
		t.Setenv("XDG_STATE_HOME", v)
		if p, err := DefaultPath(); err != nil || p != "/home/u/.local/state/sshjobs/sshjobs.db" {
			t.Errorf("XDG_STATE_HOME=%q: %q, %v", v, p, err)
		}
	}
}

func TestOpenDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", dir)
	db, err := Open(context.Background(), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if want := filepath.Join(dir, "sshjobs", "sshjobs.db"); db.Path() != want {
		t.Errorf("Path = %s, want %s", db.Path(), want)
	}
}

// TestPermissions checks that the folder and the database, with its -wal and
// -shm files, are private whatever the umask lets through.
func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "sshjobs")
	path := filepath.Join(dir, "jobs.db")
	db := openAt(t, path)
	j := insert(t, db, newJob("h", "s", "o", jobs.StateQueued))
	if err := db.AppendOutput(context.Background(), []jobs.Chunk{{JobID: j.ID, Data: []byte("x")}}, 0); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		dir: 0o700, filepath.Dir(dir): 0o700,
		path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestOddPath opens a database whose path needs escaping in a URI.
func TestOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b?c#d%20e&f", "x.db")
	db := openAt(t, path)
	insert(t, db, newJob("h", "s", "o", jobs.StateQueued))
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db := openAt(t, path)
	j := insert(t, db, newJob("h", "s", "o", jobs.StateQueued))
	db.Close()
	db = openAt(t, path)
	get(t, db, j.ID)
	var v int
	if err := db.r.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != latestVersion(t) {
		t.Errorf("user_version %d, %v", v, err)
	}
	var mode string
	if err := db.w.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v", mode, err)
	}
	// The read pool cannot write.
	if _, err := db.r.Exec("DELETE FROM jobs"); err == nil {
		t.Error("the read pool wrote")
	}
}

// rawExec changes a database behind sqlstore's back.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestRefused opens files that are not usable: each gives a clear error, and
// the file is not changed.
func TestRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		make   func(t *testing.T, path string)
		target error
		msg    string
	}{
		{"folder", func(t *testing.T, path string) {
			os.Mkdir(path, 0o700)
			os.WriteFile(filepath.Join(path, "f"), []byte("x"), 0o600)
		}, ErrNotSQLite, "it is a folder"},
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 300), 0o600)
		}, ErrNotSQLite, "does not start with the SQLite header"},
		{"short", func(t *testing.T, path string) {
			os.WriteFile(path, []byte("hello"), 0o600)
		}, ErrNotSQLite, "only 5 bytes"},
		{"foreign", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "INSERT INTO notes (body) VALUES ('mine')")
		}, ErrForeign, "tables: notes"},
		{"foreign with a jobs table", func(t *testing.T, path string) {
			rawExec(t, path, "CREATE TABLE jobs (id TEXT)", "PRAGMA user_version = 1")
		}, ErrForeign, "another program"},
		{"too new", func(t *testing.T, path string) {
			db := openAt(t, path)
			db.Close()
			rawExec(t, path, "PRAGMA user_version = 7")
		}, ErrTooNew, fmt.Sprintf("database schema version 7 is newer than this sshjobs (%d): upgrade sshjobs", latestVersion(t))},
		{"corrupt", func(t *testing.T, path string) {
			db := openAt(t, path)
			db.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Page 1 past the header holds the schema: scribble over it.
			copy(b[100:], bytes.Repeat([]byte{0xA5}, 400))
			os.WriteFile(path, b, 0o600)
		}, ErrNotSQLite, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			c.make(t, path)
			// The bytes that must not change: the file, or what the folder holds.
			content := path
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				content = filepath.Join(path, "f")
			}
			before, err := os.ReadFile(content)
			if err != nil {
				t.Fatal(err)
			}
			db, err := Open(context.Background(), path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if !errors.Is(err, c.target) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v; want %v saying %q and naming the file", err, c.target, c.msg)
			}
			after, err := os.ReadFile(content)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("the file was changed")
			}
		})
	}
}

// TestConcurrentOpen has several processes start on a new file at once: the
// migration runs once and all of them work.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	errs := make(chan error, 4)
	dbs := make(chan *DB, 4)
	for range 4 {
		go func() {
			db, err := Open(context.Background(), path, Options{})
			errs <- err
			dbs <- db
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
		if db := <-dbs; db != nil {
			insert(t, db, newJob("h", "s", "o", jobs.StateQueued))
			db.Close()
		}
	}
}

// TestViews runs the queries a person would type in sqlite3.
func TestViews(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	var last *jobs.Job
	for i := range 25 {
		j := newJob("h", "s", "o", jobs.StateSucceeded)
		j.StartedAt = j.CreatedAt.Add(time.Second)
		j.EndedAt = j.StartedAt.Add(time.Duration(i) * time.Millisecond)
		last = insert(t, db, j)
	}
	running := newJob("h", "s", "o", jobs.StateRunning)
	running.StartedAt = time.Now().Add(-time.Minute)
	running.CreatedAt = base.Add(time.Hour)
	insert(t, db, running)
	chunks := []jobs.Chunk{{JobID: last.ID, Data: []byte("hello ")}, {JobID: last.ID, Offset: 6, Data: []byte("wörld\n")}}
	if err := db.AppendOutput(ctx, chunks, 0); err != nil {
		t.Fatal(err)
	}

	var out string
	if err := db.r.QueryRow("SELECT output FROM job_output WHERE job_id = ?", last.ID).Scan(&out); err != nil || out != "hello wörld\n" {
		t.Errorf("job_output: %q, %v", out, err)
	}

	rows, err := db.r.Query("SELECT id, state, duration_ms, created_at FROM recent_jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		var id, state, created string
		var dur sql.NullInt64
		if err := rows.Scan(&id, &state, &dur, &created); err != nil {
			t.Fatal(err)
		}
		switch n {
		case 0:
			if id != running.ID || dur.Int64 < 59_000 || dur.Int64 > 120_000 {
				t.Errorf("first row %s, duration %v; want the running job, about a minute", id, dur)
			}
		case 1:
			if id != last.ID || dur.Int64 != 24 || created != last.CreatedAt.UTC().Format(time.DateTime) {
				t.Errorf("second row %s %s %v %s", id, state, dur, created)
			}
		}
		n++
	}
	if n != 20 {
		t.Errorf("recent_jobs has %d rows, want 20", n)
	}
	var active int
	if err := db.r.QueryRow("SELECT count(*) FROM active_jobs").Scan(&active); err != nil || active != 1 {
		t.Errorf("active_jobs: %d, %v", active, err)
	}
}

// latestVersion is the number of the newest embedded migration.
func latestVersion(t *testing.T) int {
	t.Helper()
	v, _, err := migrationFiles()
	if err != nil {
		t.Fatal(err)
	}
	return v
}
