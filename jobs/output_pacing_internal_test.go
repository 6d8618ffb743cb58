package jobs

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// commitTimes is a Store seam that records when each AppendOutput came.
type commitTimes struct {
	Store               // nil: only AppendOutput is called
	gate  chan struct{} // if set, each commit waits for it
	mu    sync.Mutex
	at    []time.Duration
	start time.Time
}

func (c *commitTimes) AppendOutput(ctx context.Context, chunks []Chunk, maxJobOutput int64) error {
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = append(c.at, time.Since(c.start))
	return nil
}

func (c *commitTimes) times() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.at...)
}

// The output writer (in fake time): output after a quiet spell is
// committed coalesceFor after its first byte, not up to an interval later;
// output that keeps coming is committed once an interval; a flush's commit
// does not hold back the next job's first output; and with nothing pending
// the writer commits nothing and its goroutine sleeps.
func TestOutputWriterPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		st := &commitTimes{start: time.Now()}
		w := newOutputWriter(st, interval, 1<<20, 0, slog.New(slog.NewTextHandler(io.Discard, nil)), newWatcher())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.run(ctx) }()
		want := func(what string, at ...time.Duration) {
			t.Helper()
			synctest.Wait()
			if got := st.times(); !slices.Equal(got, at) {
				t.Fatalf("%s: commits at %v, want %v", what, got, at)
			}
		}

		time.Sleep(time.Second)
		want("idle")

		w.append("a", 0, []byte("first"))
		time.Sleep(coalesceFor)
		want("first output after a quiet spell", time.Second+coalesceFor)

		// Streaming: a write every 10 ms for 200 ms.
		for i := range 20 {
			w.append("a", int64(5+i), []byte("x"))
			time.Sleep(10 * time.Millisecond)
		}
		s := time.Second + coalesceFor
		want("streaming", s, s+interval, s+2*interval, s+3*interval, s+4*interval)

		// The job ends (a flush), the next one prints at once.
		time.Sleep(interval)
		w.append("a", 25, []byte("y"))
		if err := w.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		flushed := time.Since(st.start)
		w.append("b", 0, []byte("next job"))
		time.Sleep(coalesceFor)
		want("after a flush", s, s+interval, s+2*interval, s+3*interval, s+4*interval, flushed, flushed+coalesceFor)

		time.Sleep(time.Minute)
		want("idle again", s, s+interval, s+2*interval, s+3*interval, s+4*interval, flushed, flushed+coalesceFor)
		cancel()
		<-done
	})
}

// Output appended while a flush's commit runs is the next job's first line:
// it is committed coalesceFor after the commit, whether the writer sees it
// pending when the commit ends or through its arm after. It used to wait a
// whole interval when the writer saw it first (seen once in CI, under -race).
func TestOutputWriterArmsDuringCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 50 * time.Millisecond
		st := &commitTimes{start: time.Now(), gate: make(chan struct{})}
		w := newOutputWriter(st, interval, 1<<20, 0, slog.New(slog.NewTextHandler(io.Discard, nil)), newWatcher())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.run(ctx) }()

		time.Sleep(time.Second)
		w.append("a", 0, []byte("last line"))
		flushed := make(chan error, 1)
		go func() { flushed <- w.flush(context.Background()) }()
		synctest.Wait() // the flush's commit holds the batch at the store
		w.append("b", 0, []byte("next job"))
		close(st.gate)
		if err := <-flushed; err != nil {
			t.Fatal(err)
		}
		time.Sleep(coalesceFor)
		synctest.Wait()
		if got, want := st.times(), []time.Duration{time.Second, time.Second + coalesceFor}; !slices.Equal(got, want) {
			t.Fatalf("commits at %v, want %v", got, want)
		}
		cancel()
		<-done
	})
}
