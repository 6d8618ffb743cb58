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
	// (which slows the remote through TCP) beats growing without bound. It
	// bounds the process's memory: a batch being committed plus the next one
	// filling is at most twice this, and a few MiB keep SQLite's commits
	// large enough (more buys no throughput: BenchmarkTable's output rows).
	maxPending = 4 << 20
)

// outputWriter is the one goroutine that commits the output of all running
// jobs, at most once an interval unless limit bytes are pending, in one
// transaction, and then wakes the jobs' waiters (run). With nothing pending
// it sleeps: a ticker woke an idle daemon 20 times a second.
type outputWriter struct {
	store    Store
	interval time.Duration
	limit    int
	capBytes int64
	log      *slog.Logger
	watch    *watcher
	wake     chan struct{} // buffered 1: commit now
	arm      chan struct{} // buffered 1: output became pending (run times its commit)

	commitMu sync.Mutex // serialises commits (the loop, and flushes after it stopped)

	mu        sync.Mutex // protects the fields below
	pending   []Chunk
	last      map[string]int // job id -> index in pending of its last chunk
	bytes     int
	appended  uint64        // number of append calls so far
	committed uint64        // appends whose data is committed (or given up on)
	progress  chan struct{} // closed and replaced at each commit
	stopped   bool
	// lost counts, per job, output bytes that could not be stored, and
	// unrecorded the part of them whose hole is not yet recorded in the
	// store (its Lost chunk waits in pending); lostErr is why.
	lost       map[string]int64
	unrecorded map[string]int64
	lostErr    map[string]error
}

func newOutputWriter(s Store, interval time.Duration, limit int, capBytes int64, log *slog.Logger, w *watcher) *outputWriter {
	return &outputWriter{
		store: s, interval: interval, limit: limit, capBytes: capBytes, log: log, watch: w,
		wake: make(chan struct{}, 1), arm: make(chan struct{}, 1), last: map[string]int{}, progress: make(chan struct{}),
		lost: map[string]int64{}, unrecorded: map[string]int64{}, lostErr: map[string]error{},
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
		w.pending[i].Data = appendChunk(w.pending[i].Data, p)
	} else {
		w.pending = append(w.pending, Chunk{JobID: id, Offset: off, Data: appendChunk(nil, p), At: time.Now()})
		w.last[id] = len(w.pending) - 1
	}
	first := w.bytes == 0
	w.bytes += len(p)
	w.appended++
	stopped, full := w.stopped, w.bytes >= w.limit
	w.mu.Unlock()
	switch {
	case stopped:
		// Late output of a job that ends after shutdown: commit it directly.
		w.commit()
	case full:
		w.signal()
	case first:
		select {
		case w.arm <- struct{}{}:
		default:
		}
	}
}

// A job's chunk starts as an exact copy of its first write (most jobs print
// little); once it grows past pooledFrom it moves to a maxChunk buffer
// from chunkBufs, which takes the job's later writes without reallocating
// and is recycled once committed. A job streaming output thus costs no
// garbage per write, where growing by append costs several times its
// output.
const pooledFrom = 16 << 10

var chunkBufs = sync.Pool{New: func() any { return new([maxChunk]byte) }}

// appendChunk appends p to a chunk's data; len(data)+len(p) <= maxChunk.
func appendChunk(data, p []byte) []byte {
	if len(data)+len(p) <= cap(data) || len(data)+len(p) < pooledFrom {
		if data == nil {
			return append([]byte(nil), p...)
		}
		return append(data, p...)
	}
	buf := chunkBufs.Get().(*[maxChunk]byte)[:0]
	buf = append(append(buf, data...), p...)
	putChunkBuf(data)
	return buf
}

// putChunkBuf recycles data if it is a chunkBufs buffer.
func putChunkBuf(data []byte) {
	if cap(data) == maxChunk {
		chunkBufs.Put((*[maxChunk]byte)(data[:maxChunk]))
	}
}

func (w *outputWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run commits pending output until ctx ends, then commits what is left.
// While a job streams, the timer's commits are interval apart. Output after
// a quiet spell, or after a flush (a job's end: the next job's first line
// is news), is committed coalesceFor after its first byte, so that a
// follower sees it at once (a ticker made it wait half an interval on
// average).
func (w *outputWriter) run(ctx context.Context) {
	t := time.NewTimer(w.interval)
	t.Stop()
	defer t.Stop()
	armed := false
	var paced time.Time // of the timer's last commit; zero after a flush
	for {
		timed := false
		select {
		case <-w.arm:
			if !armed {
				armed = true
				t.Reset(w.pace(paced))
			}
			continue
		case <-t.C:
			timed = true
		case <-w.wake:
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			w.mu.Unlock()
			w.commit()
			return
		}
		w.commit()
		paced = time.Time{}
		if timed {
			paced = time.Now()
		}
		// Output that came during the commit, or a batch queued again,
		// waits for the next one, paced as its own arm would pace it (the
		// arm may come before or after this look): an interval after a
		// timed commit, coalesceFor after a flush.
		w.mu.Lock()
		armed = len(w.pending) > 0
		w.mu.Unlock()
		if armed {
			t.Reset(w.pace(paced))
		} else {
			t.Stop()
		}
	}
}

// pace is how long output that became pending waits for its commit: the
// rest of an interval after the timer's last commit at paced, and at least
// coalesceFor.
func (w *outputWriter) pace(paced time.Time) time.Duration {
	return max(w.interval-time.Since(paced), coalesceFor)
}

// coalesceFor is how long the first output after a quiet spell waits for
// the rest of its burst (a command's output comes in several reads).
const coalesceFor = 2 * time.Millisecond

// A batch that fails is retried commitAttempts times in all, waiting
// commitBackoff, then twice that, and so on, in between.
const (
	commitAttempts = 5
	commitBackoff  = 100 * time.Millisecond
)

// commit writes the pending chunks in one transaction, retrying a failed one.
// Output that still cannot be stored is never skipped over: each job's part of
// the batch is tried on its own, so that one job's failure (its row deleted)
// costs no other job its output, and what fails becomes a Lost chunk that is
// queued again, so that the hole is recorded and the job's later output fits
// after it.
func (w *outputWriter) commit() {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	batch, upto := w.pending, w.appended
	w.pending, w.bytes = nil, 0
	clear(w.last)
	w.mu.Unlock()

	var requeue []Chunk
	if len(batch) > 0 {
		if err := w.appendRetry(batch); err != nil {
			w.log.Warn("commit output: storing job by job", "chunks", len(batch), "err", err)
			requeue = w.appendEach(batch)
		} else {
			w.recorded(batch)
		}
	}

	if len(requeue) == 0 {
		// Stored (the store keeps no reference): the buffers serve again.
		for _, c := range batch {
			putChunkBuf(c.Data)
		}
	}

	w.mu.Lock()
	w.committed = upto
	if len(requeue) > 0 {
		// Counted as appended, so that a flush waits for one more attempt
		// to record the holes.
		w.appended++
		w.pending = append(requeue, w.pending...)
		for id, i := range w.last {
			w.last[id] = i + len(requeue)
		}
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
}

// appendRetry stores chunks in one transaction, retrying with backoff while
// the error may be passing (the database locked or full).
func (w *outputWriter) appendRetry(chunks []Chunk) error {
	delay := commitBackoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.store.AppendOutput(ctx, chunks, w.capBytes)
		cancel()
		if err == nil || attempt == commitAttempts || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadInput) {
			return err
		}
		w.log.Debug("commit output", "chunks", len(chunks), "attempt", attempt, "err", err)
		time.Sleep(delay)
		delay *= 2
	}
}

// appendEach stores batch one job at a time and returns, as Lost chunks, what
// could not be stored of jobs that still exist.
func (w *outputWriter) appendEach(batch []Chunk) []Chunk {
	var order []string
	byJob := map[string][]Chunk{}
	for _, c := range batch {
		if byJob[c.JobID] == nil {
			order = append(order, c.JobID)
		}
		byJob[c.JobID] = append(byJob[c.JobID], c)
	}
	var lost []Chunk
	for _, id := range order {
		chunks := byJob[id]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.store.AppendOutput(ctx, chunks, w.capBytes)
		cancel()
		if err == nil {
			w.recorded(chunks)
			continue
		}
		var data, holes int64
		for _, c := range chunks {
			data += int64(len(c.Data))
			holes += c.Lost
		}
		err = fmt.Errorf("store output of job %s: %w", id, err)
		w.mu.Lock()
		w.lost[id] += data
		w.lostErr[id] = err
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadInput) {
			// Nothing can record it: the row is gone, or refuses this output.
			w.unrecorded[id] -= holes
		} else {
			w.unrecorded[id] += data
		}
		w.mu.Unlock()
		w.log.Error("job output not stored", "job", id, "bytes", data, "err", err)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadInput) {
			continue
		}
		// Output of one job is contiguous in a batch: one hole covers it.
		first, last := chunks[0], chunks[len(chunks)-1]
		end := last.Offset + int64(len(last.Data)) + last.Lost
		lost = append(lost, Chunk{JobID: id, Offset: first.Offset, Lost: end - first.Offset, At: first.At})
	}
	return lost
}

// recorded notes that the Lost chunks among chunks are stored.
func (w *outputWriter) recorded(chunks []Chunk) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range chunks {
		if c.Lost > 0 {
			w.unrecorded[c.JobID] -= c.Lost
		}
	}
}

// flush returns once all output appended before the call is committed, or
// turned into Lost chunks that wait for the store.
func (w *outputWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.appended
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		w.commit()
		return nil
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

// jobErr says whether some of job id's output could not be stored.
func (w *outputWriter) jobErr(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.lost[id]
	if n == 0 {
		return nil
	}
	if u := w.unrecorded[id]; u > 0 {
		return fmt.Errorf("job %s: %d bytes of output could not be stored (%d of them not yet recorded as lost): %w", id, n, u, w.lostErr[id])
	}
	return fmt.Errorf("job %s: %d bytes of output could not be stored: %w", id, n, w.lostErr[id])
}

// unrecordedBytes is how much of job id's lost output is not yet recorded.
func (w *outputWriter) unrecordedBytes(id string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unrecorded[id]
}

// forget drops what is known of a job whose end is recorded.
func (w *outputWriter) forget(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.lost, id)
	delete(w.unrecorded, id)
	delete(w.lostErr, id)
}

// err reports output whose loss could not even be recorded.
func (w *outputWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for id, n := range w.unrecorded {
		if n > 0 {
			errs = append(errs, fmt.Errorf("job %s: %d bytes of output lost, and the loss is not recorded: %w", id, n, w.lostErr[id]))
		}
	}
	return errors.Join(errs...)
}
