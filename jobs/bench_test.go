package jobs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// writerExecutor writes chunks of output as fast as it can, as a shell
// streaming a big file would.
type writerExecutor struct {
	chunk  []byte
	chunks int
}

func (x writerExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	for range x.chunks {
		t.Write(x.chunk)
	}
	code := 0
	return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
}

// BenchmarkIngest: 16 jobs in 16 sessions write output at once through the
// engine's batching writer into a real SQLite file; each op is one job run to
// its end with all output committed. Reports MB/s and chunks/s as written
// by the executor (the writer merges them into fewer rows).
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{100, 32 << 10} {
		b.Run(fmt.Sprintf("chunk=%d", size), func(b *testing.B) {
			chunks := max(1, (4<<20)/size) // 4 MiB per job
			if size < 1024 {
				chunks = 5000
			}
			db, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), sqlstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			eng, err := jobs.New(jobs.Config{Store: db, Executor: writerExecutor{make([]byte, size), chunks}, Retention: -1})
			if err != nil {
				b.Fatal(err)
			}
			if err := eng.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			const jobsPerOp = 16
			b.SetBytes(int64(jobsPerOp * chunks * size))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for i := range jobsPerOp {
					wg.Go(func() {
						j, err := eng.Enqueue(context.Background(), jobs.Spec{Host: "bench", Session: fmt.Sprint(i), Command: "x"})
						if err != nil {
							b.Error(err)
							return
						}
						if _, err := eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: time.Minute, Offset: -1}); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*jobsPerOp*chunks)/time.Since(start).Seconds(), "chunks/s")
		})
	}
}

type nopExecutor struct{}

func (nopExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	t.Started(jobs.Start{})
	code := 0
	return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code, Cwd: "/"}
}

// BenchmarkJobOverhead is what the engine and the store add to every command:
// insert, claim, start, end and the waiter's wake-up, with an executor that
// does nothing.
func BenchmarkJobOverhead(b *testing.B) {
	db, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	eng, err := jobs.New(jobs.Config{Store: db, Executor: nopExecutor{}, Retention: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	b.ResetTimer()
	for range b.N {
		j, err := eng.Enqueue(context.Background(), jobs.Spec{Host: "bench", Command: "true"})
		if err != nil {
			b.Fatal(err)
		}
		if j, err := eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: time.Minute, Offset: -1}); err != nil || j.State != jobs.StateSucceeded {
			b.Fatal(j, err)
		}
	}
}
