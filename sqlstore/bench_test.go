package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// BenchmarkAppendOutput measures output throughput into the store the way the
// engine writes it: chunks of many jobs, flushed in batches of about 64 KiB,
// against one transaction per chunk. One op is one chunk. With "reader", a
// goroutine calls ReadOutput in a loop meanwhile, and the benchmark reports
// its latency: a reader must never wait for the writer.
//
//	go test -run '^$' -bench BenchmarkAppendOutput -benchtime 2s ./sqlstore/
//
// Measured on 2 cores (AMD EPYC, ext4): 32 KiB chunks ~160 MB/s batched and
// ~145 MB/s one per transaction; 100 B chunks ~175k rows/s batched and ~12k
// one per transaction; reader p99 about 1 ms. Page sizes of 8, 16 and 64 KiB
// were no faster than the default 4 KiB (64 KiB was twice as slow), and a
// WITHOUT ROWID output table was half as fast: its seeks compare whole records,
// reading every overflow page of each 32 KiB blob they pass.
func BenchmarkAppendOutput(b *testing.B) {
	const jobCount = 16
	for _, c := range []struct {
		name   string
		chunk  int
		batch  int // bytes per transaction; 0: one chunk per transaction
		cap    int64
		reader bool
	}{
		{"32KiB/batched", 32 << 10, 64 << 10, 64 << 20, false},
		{"32KiB/unbatched", 32 << 10, 0, 64 << 20, false},
		{"100B/batched", 100, 64 << 10, 64 << 20, false},
		{"100B/unbatched", 100, 0, 64 << 20, false},
		{"32KiB/batched/capped1MiB", 32 << 10, 64 << 10, 1 << 20, false},
		{"32KiB/batched/reader", 32 << 10, 64 << 10, 64 << 20, true},
		{"100B/batched/reader", 100, 64 << 10, 64 << 20, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			db := openTest(b)
			ids := make([]string, jobCount)
			for i := range ids {
				ids[i] = insert(b, db, newJob("h", fmt.Sprint("s", i), "o", jobs.StateRunning)).ID
			}
			data := make([]byte, c.chunk)
			for i := range data {
				data[i] = byte('a' + i%26)
			}
			var offsets [jobCount]int64
			var stored [jobCount]atomic.Int64 // committed, for the reader

			var (
				stop      = make(chan struct{})
				wg        sync.WaitGroup
				latencies []time.Duration
			)
			if c.reader {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(1, 1))
					for {
						select {
						case <-stop:
							return
						default:
						}
						k := rng.IntN(jobCount)
						off := max(stored[k].Load()-16<<10, 0)
						t0 := time.Now()
						if _, err := db.ReadOutput(ctx, ids[k], off, 16<<10); err != nil {
							b.Error(err)
							return
						}
						latencies = append(latencies, time.Since(t0))
					}
				})
			}

			b.SetBytes(int64(c.chunk))
			var batch []jobs.Chunk
			batchBytes := 0
			flush := func() {
				if err := db.AppendOutput(ctx, batch, c.cap); err != nil {
					b.Fatal(err)
				}
				for _, ch := range batch {
					k := slices.Index(ids, ch.JobID)
					stored[k].Store(ch.Offset + int64(len(ch.Data)))
				}
				batch, batchBytes = batch[:0], 0
			}
			for i := 0; b.Loop(); i++ {
				k := i % jobCount
				batch = append(batch, jobs.Chunk{JobID: ids[k], Offset: offsets[k], Data: data})
				offsets[k] += int64(len(data))
				batchBytes += len(data)
				if batchBytes >= c.batch {
					flush()
				}
			}
			if len(batch) > 0 {
				flush()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			close(stop)
			wg.Wait()
			if c.reader && len(latencies) > 0 {
				slices.Sort(latencies)
				p99 := latencies[len(latencies)*99/100]
				b.ReportMetric(float64(p99.Microseconds())/1000, "read-p99-ms")
				b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "read-max-ms")
				b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "reads/s")
			}
		})
	}
}

// BenchmarkOpen opens an existing, up-to-date database, as every CLI command
// does (sshjobs run through the daemon opens it to follow the job).
//
//	go test -run '^$' -bench BenchmarkOpen ./sqlstore/
func BenchmarkOpen(b *testing.B) {
	path := b.TempDir() + "/sshjobs.db"
	db, err := Open(context.Background(), path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	db.Close()
	for b.Loop() {
		db, err := Open(context.Background(), path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
}
