// Package sqlstore keeps sshjobs' jobs and their output in one SQLite file
// (modernc.org/sqlite, no cgo): it opens the file with the pragmas that let
// several processes share it, applies the embedded migrations, refuses files
// that are not its own, and implements jobs.Store.
//
// A DB holds two pools on the file: one writer connection, because SQLite has
// one writer at a time anyway and a single connection never fights itself for
// the lock, and a few query-only readers, so that reads never queue behind a
// batch of output.
package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/migrations"
	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

var _ jobs.Store = (*DB)(nil)

// applicationID marks a database as sshjobs' own ('ssjb'); migration 0001 sets
// it. Open refuses any other non-empty database.
const applicationID = 0x73736a62

// Errors Open returns, wrapped with the path, for files it will not use. The
// file is left as it was.
var (
	// ErrForeign: the file is an SQLite database of another program.
	ErrForeign = errors.New("not an sshjobs database")
	// ErrNotSQLite: the file is not an SQLite database, or it is damaged.
	ErrNotSQLite = errors.New("not a readable SQLite database")
	// ErrReadOnly: the database's folder cannot be written (a read-only
	// file system or no permission), which SQLite needs even to read it.
	ErrReadOnly = errors.New("the database's folder is read-only")
	// ErrTooNew: the database was migrated by a newer sshjobs. The text is
	// the end of the sentence that explains it.
	ErrTooNew = errors.New("upgrade sshjobs")
)

// Options tune Open; the zero value is what sshjobs uses.
type Options struct {
	// ReadConns is the size of the read pool. Default 4.
	ReadConns int
	// BusyTimeout is how long a statement waits for another process's write
	// lock before failing. Default 5s.
	BusyTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	return o
}

// DefaultPath is where sshjobs keeps its database when not told otherwise:
// $XDG_STATE_HOME/sshjobs/sshjobs.db, else ~/.local/state/sshjobs/sshjobs.db.
func DefaultPath() (string, error) {
	// The XDG spec says to ignore a relative value.
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "sshjobs", "sshjobs.db"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default database path: %w", err)
	}
	return filepath.Join(home, ".local", "state", "sshjobs", "sshjobs.db"), nil
}

// DB is a jobs.Store on one SQLite file. It is safe for concurrent use, and
// several processes may open the same file.
type DB struct {
	path string
	w    *sql.DB // one connection: all writes
	r    *sql.DB // query-only pool: Get, List, ReadOutput, ...
	ckpt *checkpointer

	// Statements AppendOutput runs for every chunk or job, prepared once on
	// the writer's only connection.
	stInsertChunk *sql.Stmt
	stJobOutput   *sql.Stmt
	stLastSeq     *sql.Stmt
	stSetOutput   *sql.Stmt

	// The queries of a job's life, prepared on first use.
	wq, rq *stmtCache
}

// Open opens (creating it if needed) the database at path, "" meaning
// DefaultPath, and brings its schema up to date. A new folder is created 0700
// and a new file 0600 (SQLite gives its -wal and -shm files the same mode). A
// file that is not an SQLite database, another program's database, or one
// migrated by a newer sshjobs is refused with ErrNotSQLite, ErrForeign or
// ErrTooNew, before anything is written to it.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if path == "" {
		p, err := DefaultPath()
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		path = p
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	path = abs
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := writableDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	latest, files, err := migrationFiles()
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// Check the file through a read-only connection first: the writer's
	// pragmas (journal_mode=WAL) would already change a file we must refuse.
	current, err := check(ctx, path, opts, latest)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}

	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	w, err := sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout("+busy+")",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=journal_mode(WAL)",
		// Checkpoints are the checkpointer's (checkpoint.go); SQLite's own
		// only catch a log that grew without it.
		"_pragma=wal_autocheckpoint("+strconv.Itoa(2*ckptBound/4096)+")",
		// A deferred transaction that reads and then writes fails with
		// SQLITE_BUSY, busy timeout or not, when another process committed
		// in between; taking the write lock at BEGIN waits instead.
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := connectWriter(ctx, w, opts.BusyTimeout); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db := &DB{path: path, w: w, ckpt: newCheckpointer(path)}
	// Up to date (every open but the first of each version): no write
	// transaction, which would wait for the write lock of a daemon
	// committing output.
	if current {
		files = nil
	}
	if err := db.migrate(ctx, files); err != nil {
		db.ckpt.close()
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout("+busy+")",
		"_pragma=query_only(1)",
	))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	db.r = r
	db.wq, db.rq = newStmtCache(db.w), newStmtCache(db.r)
	db.wq.wrote = db.ckpt.kick
	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// Path is the database file's absolute path.
func (db *DB) Path() string { return db.path }

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	for _, c := range []*stmtCache{db.wq, db.rq} {
		if c != nil {
			c.close()
		}
	}
	for _, st := range []*sql.Stmt{db.stInsertChunk, db.stJobOutput, db.stLastSeq, db.stSetOutput} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.ckpt.close())
	errs = append(errs, db.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %s: %w", db.path, err)
	}
	return nil
}

// dsn builds a modernc DSN: a file: URI, so that any character in path
// survives (SQLite decodes %XX), followed by the driver's parameters.
func dsn(path string, params ...string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	return u.String() + "?" + strings.Join(params, "&")
}

// createPrivate creates path's folder 0700 and path itself 0600 unless they
// exist. Creating the file here, rather than letting SQLite do it, is what
// keeps the umask out of its mode.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// check makes sure the file at path is empty or an sshjobs database that this
// binary can migrate, without writing to it, and says whether it is already
// at the latest schema (nothing to migrate).
func check(ctx context.Context, path string, opts Options, latest int) (current bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return false, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		what := "not a regular file"
		if fi.IsDir() {
			what = "a folder"
		}
		return false, fmt.Errorf("%w: it is %s", ErrNotSQLite, what)
	}
	head := make([]byte, 100)
	n, err := io.ReadFull(f, head)
	f.Close()
	switch {
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return false, err
	case n == 0:
		// New, or a WAL database whose first commit was never checkpointed:
		// SQLite knows which.
	case err != nil:
		return false, fmt.Errorf("%w: the file is only %d bytes long", ErrNotSQLite, n)
	case !bytes.Equal(head[:len(sqliteHeader)], sqliteHeader):
		return false, fmt.Errorf("%w: the file does not start with the SQLite header", ErrNotSQLite)
	}

	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	db, err := sql.Open("sqlite", dsn(path, "mode=ro", "_pragma=busy_timeout("+busy+")"))
	if err != nil {
		return false, err
	}
	defer db.Close()
	var appID, version int
	var tables []string
	err = func() error {
		// One snapshot: another process may be migrating the file right now.
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx,
			"SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			tables = append(tables, name)
		}
		return rows.Err()
	}()
	if err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, fmt.Errorf("%w: %w", ErrNotSQLite, err)
	}

	switch {
	case appID == 0 && version == 0 && len(tables) == 0:
		return false, nil // empty: ours to set up
	case appID != applicationID:
		if len(tables) > 8 {
			tables = append(tables[:8], "...")
		}
		return false, fmt.Errorf("%w: it belongs to another program (application_id %#x, user_version %d, tables: %s); refusing to change it",
			ErrForeign, appID, version, strings.Join(tables, ", "))
	case version > latest:
		return false, fmt.Errorf("database schema version %d is newer than this sshjobs (%d): %w",
			version, latest, ErrTooNew)
	case version > 0 && !slices.Contains(tables, "jobs"):
		return false, fmt.Errorf("%w: it is marked as sshjobs' (schema version %d) but has no jobs table", ErrForeign, version)
	}
	return version == latest, nil
}

// SchemaVersion is the schema this binary migrates databases to: the number
// of its newest embedded migration (a database's PRAGMA user_version once
// Open has run). It fails only if the embedded files are misnumbered, which
// Open would refuse too.
func SchemaVersion() (int, error) {
	latest, _, err := migrationFiles()
	return latest, err
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrationFiles reads the embedded migrations, which must be numbered 1, 2,
// ... without holes: a hole would be skipped by every database already past it.
func migrationFiles() (latest int, files []migration, err error) {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return 0, nil, fmt.Errorf("read migrations: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return 0, nil, fmt.Errorf("migration %s: name is not NNNN_what.sql", name)
		}
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return 0, nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		files = append(files, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(files, func(a, b migration) int { return a.version - b.version })
	for i, m := range files {
		if m.version != i+1 {
			return 0, nil, fmt.Errorf("migration %s: expected number %d", m.name, i+1)
		}
	}
	return len(files), files, nil
}

// connectWriter makes the writer's one connection, whose pragmas run as it
// is made. Turning a new file's journal into WAL takes an exclusive lock
// without SQLite's busy handler, so a process that opens a new file while
// another one does can get SQLITE_BUSY at once (several sshjobs starting
// on a new database; TestConcurrentOpen under load): it tries again for up
// to the busy timeout, as long as the handler would have waited.
func connectWriter(ctx context.Context, w *sql.DB, busyTimeout time.Duration) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := w.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// migrate applies the migrations the database has not seen yet, each in its
// own transaction with its user_version, so that a crash leaves the database
// at a version it fully has. Another process may be migrating the same file:
// the version is read again under the write lock.
func (db *DB) migrate(ctx context.Context, files []migration) error {
	for _, m := range files {
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			var version int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
				return err
			}
			if version >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.version))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// inTx runs f in a write transaction (BEGIN IMMEDIATE) and commits it unless f
// fails.
func (db *DB) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	db.ckpt.bound(ctx, db.w)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	db.ckpt.kick()
	return nil
}

func (db *DB) prepare(ctx context.Context) error {
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&db.stInsertChunk, "INSERT INTO output_chunks (job_id, seq, offset, data, at_ms) VALUES (?, ?, ?, ?, ?)"},
		{&db.stJobOutput, "SELECT output_bytes, gap_start, gap_end, output_lost FROM jobs WHERE id = ?"},
		{&db.stLastSeq, "SELECT seq FROM output_chunks WHERE job_id = ? ORDER BY offset DESC LIMIT 1"},
		{&db.stSetOutput, "UPDATE jobs SET output_bytes = ?, gap_start = ?, gap_end = ?, output_lost = ? WHERE id = ?"},
	} {
		st, err := db.w.PrepareContext(ctx, p.q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.st = st
	}
	return nil
}
