package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// patternExecutor writes a job's own byte pattern in writes of random sizes
// (1 byte to 40 KiB: across the writer's switch to pooled chunk buffers and
// its chunk size), as fast as it can.
type patternExecutor struct{ size int }

func jobPattern(id string, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s %d\n", id, i)
	}
	return b.Bytes()[:n]
}

func (x patternExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	data := jobPattern(j.ID, x.size)
	rng := rand.New(rand.NewPCG(uint64(len(j.ID)), uint64(j.ID[0])))
	for len(data) > 0 {
		n := min(len(data), 1+rng.IntN(40<<10))
		if rng.IntN(4) == 0 {
			n = min(len(data), 1+rng.IntN(64))
		}
		t.Write(data[:n])
		data = data[n:]
	}
	code := 0
	return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
}

// The writer recycles its chunk buffers once committed: jobs streaming at
// once, in writes big and small, each get exactly their own bytes stored,
// never another job's (a buffer reused too early would show here).
func TestOutputBuffersRecycledByteExact(t *testing.T) {
	const size = 3 << 20
	h := newHarness(t, "", func(c *jobs.Config) { c.Executor = patternExecutor{size} })
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			j, err := h.eng.Enqueue(context.Background(), jobs.Spec{Host: "local", Session: fmt.Sprint(i), Command: "x"})
			if err != nil {
				t.Error(err)
				return
			}
			j, err = h.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: time.Minute, Offset: -1})
			if err != nil || j.State != jobs.StateSucceeded || j.OutputBytes != size {
				t.Errorf("job %s: %v %v, %d bytes", j.ID, j.State, err, j.OutputBytes)
				return
			}
			out, err := h.eng.Read(context.Background(), j.ID, 0, size)
			if err != nil {
				t.Error(err)
				return
			}
			if want := jobPattern(j.ID, size); !bytes.Equal(out.Data, want) {
				i := 0
				for i < len(want) && i < len(out.Data) && out.Data[i] == want[i] {
					i++
				}
				t.Errorf("job %s: output differs from byte %d (got %d bytes)", j.ID, i, len(out.Data))
			}
		})
	}
	wg.Wait()
}
