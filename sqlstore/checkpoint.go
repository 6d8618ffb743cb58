package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// A WAL checkpoint copies the log into the database file, with an fsync of
// each. Left to SQLite (wal_autocheckpoint), it runs in the writer's
// connection after any commit that leaves the log past 1000 pages: for
// streamed output, after every batch, and every job's output waits for it
// (with it the SSH reads that feed the batches): with a checkpoint per 4 MiB,
// a detached job's reader waited 0.34-0.42 s of the ~1.3 s that 90 MB took
// to store on a loaded 2-core machine, 0.13-0.2 s with the checkpointer
// (BenchmarkDetachedOutput). So a checkpointer, on a connection of its own,
// copies the log while the writer goes on: after ckptEvery bytes of output,
// or a second after any other write.
//
// A log is written from its start again only by a transaction that begins
// once all of it is copied, which a checkpoint running beside a stream of
// commits never achieves. So once ckptBound bytes of output went into the
// log since the writer last found it all copied, the writer, before its next
// transaction, runs a checkpoint itself (after the checkpointer's current
// one: little is left to copy), and that transaction starts the log over.
// The log stays near ckptBound plus a batch, unless a reader holds on to
// an old snapshot, as with SQLite's own checkpoints. Those stay on, at twice
// ckptBound, for the log of writes that tell the checkpointer nothing (a
// prune's deletes).
const (
	ckptEvery = 4 << 20
	ckptIdle  = time.Second
	ckptBound = 32 << 20
)

type checkpointer struct {
	path string
	mu   sync.Mutex // serialises this process's checkpoints; protects conn
	conn *sql.DB    // opened on first use

	grown   atomic.Int64 // output bytes logged since the log was last all copied
	pending atomic.Int64 // output bytes logged since the last checkpoint began
	kickC   chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once // of close
}

func newCheckpointer(path string) *checkpointer {
	c := &checkpointer{path: path, kickC: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// logged counts n bytes of output written to the log by a commit.
func (c *checkpointer) logged(n int64) {
	c.grown.Add(n)
	c.pending.Add(n)
}

// kick tells the checkpointer that a commit happened.
func (c *checkpointer) kick() {
	select {
	case c.kickC <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	last := time.Now()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kickC:
		}
		// Small commits wait for a second's worth: their checkpoints would
		// cost an fsync pair each.
		for c.pending.Load() < ckptEvery && time.Since(last) < ckptIdle {
			t := time.NewTimer(time.Until(last.Add(ckptIdle)))
			select {
			case <-c.stop:
				t.Stop()
				return
			case <-c.kickC:
			case <-t.C:
			}
			t.Stop()
		}
		last = time.Now()
		c.checkpoint(context.Background(), nil)
	}
}

// bound runs a checkpoint on the writer's connection w when the log grew past
// ckptBound, before the writer's next transaction, so that it starts the
// log over.
func (c *checkpointer) bound(ctx context.Context, w *sql.DB) {
	if c.grown.Load() >= ckptBound {
		c.checkpoint(ctx, w)
	}
}

// checkpoint copies what it can of the log, on conn (nil: the
// checkpointer's own). Errors are left to the writes: a checkpoint fails
// only when the file does (read-only, full), and they report that.
func (c *checkpointer) checkpoint(ctx context.Context, conn *sql.DB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writer := conn != nil
	if conn == nil {
		if c.conn == nil {
			db, err := sql.Open("sqlite", dsn(c.path, "_pragma=busy_timeout(1000)", "_pragma=synchronous(NORMAL)"))
			if err != nil {
				return
			}
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			db.SetConnMaxIdleTime(0)
			db.SetConnMaxLifetime(0)
			c.conn = db
		}
		conn = c.conn
	}
	grown := c.grown.Load()
	c.pending.Store(0)
	var busy, log, copied int64
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied); err != nil {
		return
	}
	if log == copied && writer {
		// All of it, between the writer's transactions: its next one
		// starts the log over. One of the checkpointer's own runs beside
		// a transaction that began before the log was all copied, which
		// then goes on appending (and so would the next): finding the log
		// all copied there proves nothing.
		c.grown.Add(-grown)
	}
}

// close stops the checkpointer and closes its connection; later calls do
// nothing (DB.Close may be called twice).
func (c *checkpointer) close() error {
	stopped := false
	c.once.Do(func() { close(c.stop); stopped = true })
	if !stopped {
		return nil
	}
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}
