package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

const (
	// maxChunk bounds the size of one stored chunk: writes of a job that
	// arrive between two commits are merged up to this size.
	maxChunk = 256 << 10
	// maxPending is how much output may wait for a commit before writers
	// block: past it the store cannot keep up, and slowing the SSH reader
	// (which slows the remote through TCP) beats growing without bound.
	maxPending = 32 << 20
)

// outputWriter is the one goroutine that commits the output of all running
// jobs: every interval, or sooner once limit bytes are pending, in one
// transaction, and then wakes the jobs' waiters.
type outputWriter struct {
	store    Store
	interval time.Duration
	limit    int
	capBytes int64
	log      *slog.Logger
	watch    *watcher
	wake     chan struct{} // buffered 1: commit now

	commitMu sync.Mutex // serialises commits (the loop, and flushes after it stopped)

	mu        sync.Mutex // protects the fields below
	pending   []Chunk
	last      map[string]int // job id -> index in pending of its last chunk
	bytes     int
	appended  uint64        // number of append calls so far
	committed uint64        // appends whose data is committed (or given up on)
	progress  chan struct{} // closed and replaced at each commit
	stopped   bool
	lastErr   error
}

func newOutputWriter(s Store, interval time.Duration, limit int, capBytes int64, log *slog.Logger, w *watcher) *outputWriter {
	return &outputWriter{
		store: s, interval: interval, limit: limit, capBytes: capBytes, log: log, watch: w,
		wake: make(chan struct{}, 1), last: map[string]int{}, progress: make(chan struct{}),
	}
}

// append queues a copy of p as the job's output at offset off, merged into
// the job's last pending chunk when it continues it.
func (w *outputWriter) append(id string, off int64, p []byte) {
	w.mu.Lock()
	for w.bytes >= maxPending && !w.stopped {
		ch := w.progress
		w.mu.Unlock()
		w.signal()
		<-ch
		w.mu.Lock()
	}
	if i, ok := w.last[id]; ok && w.pending[i].Offset+int64(len(w.pending[i].Data)) == off && len(w.pending[i].Data)+len(p) <= maxChunk {
		w.pending[i].Data = append(w.pending[i].Data, p...)
	} else {
		w.pending = append(w.pending, Chunk{JobID: id, Offset: off, Data: append([]byte(nil), p...), At: time.Now()})
		w.last[id] = len(w.pending) - 1
	}
	w.bytes += len(p)
	w.appended++
	stopped, full := w.stopped, w.bytes >= w.limit
	w.mu.Unlock()
	switch {
	case stopped:
		// Late output of a job that ends after shutdown: commit it directly.
		_ = w.commit()
	case full:
		w.signal()
	}
}

func (w *outputWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run commits pending output until ctx ends, then commits what is left.
func (w *outputWriter) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.wake:
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
			_ = w.commit()
			return
		}
		_ = w.commit()
	}
}

// commit writes the pending chunks in one transaction. A failed commit is
// retried a few times; output is never dropped silently.
func (w *outputWriter) commit() error {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	batch, upto := w.pending, w.appended
	w.pending, w.bytes = nil, 0
	clear(w.last)
	w.mu.Unlock()

	var err error
	if len(batch) > 0 {
		for attempt := range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = w.store.AppendOutput(ctx, batch, w.capBytes)
			cancel()
			if err == nil {
				break
			}
			w.log.Warn("commit output", "chunks", len(batch), "attempt", attempt+1, "err", err)
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		}
		if err != nil {
			err = fmt.Errorf("commit %d output chunks: %w", len(batch), err)
			w.log.Error("output lost", "err", err)
		}
	}

	w.mu.Lock()
	w.committed = upto
	if err != nil {
		w.lastErr = err
	}
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range batch {
		if !seen[c.JobID] {
			seen[c.JobID] = true
			w.watch.changed(c.JobID)
		}
	}
	return err
}

// flush returns once all output appended before the call is committed.
func (w *outputWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.appended
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		return w.commit()
	}
	for {
		w.mu.Lock()
		done, ch := w.committed >= target, w.progress
		w.mu.Unlock()
		if done {
			return nil
		}
		w.signal()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flush output: %w", ctx.Err())
		}
	}
}

// err is the last commit error, if output was lost.
func (w *outputWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr != nil {
		return errors.Join(errors.New("some job output could not be stored"), w.lastErr)
	}
	return nil
}
