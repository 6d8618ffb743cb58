package sessions_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// countTask counts a detached job's output, without storing it, and notes
// when the job started and when its first and last bytes came.
type countTask struct {
	mu                  sync.Mutex
	n                   int64
	started, first, end time.Time
}

func (t *countTask) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.first = time.Now()
	}
	t.n += int64(len(p))
	t.end = time.Now()
	return len(p), nil
}

func (t *countTask) Started(jobs.Start) {
	t.mu.Lock()
	t.started = time.Now()
	t.mu.Unlock()
}

func (t *countTask) Prompt(*jobs.Prompt)           {}
func (t *countTask) Controls() <-chan jobs.Control { return nil }
func (t *countTask) Flush(context.Context) error   { return nil }

// BenchmarkDetachedOutput streams 90 MB through a detached job side by side
// with plain `ssh HOST cmd` on one OpenSSH sshd, each round running all
// three, and reports MB/s of the medians:
//
//	counted   Executor.Run with a task that counts the output: the remote
//	          scripts and the SSH path alone (with the median launch, first
//	          byte and the time from the last byte to the end, in ms)
//	stored    through a jobs.Engine into a SQLite file, as sshjobs runs it
//	ssh       plain `ssh HOST cmd`, connecting each time as a user would
//
//	go test -run '^$' -bench DetachedOutput -benchtime 5x ./sessions/
func BenchmarkDetachedOutput(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("OpenSSH sshd not installed")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("no ssh client")
	}
	// A clean HOME: this machine's root .bashrc runs pyenv for every exec.
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	const n = 90_000_000
	cmd := fmt.Sprintf("yes %s | head -c %d", strings.Repeat("x", 99), n)
	ctx := context.Background()
	x := newDetachPool(b, srv.SSHConfig, b.TempDir())
	e := newDetachEngine(b, filepath.Join(b.TempDir(), "sshjobs.db"), x, 15*time.Second)
	d, err := x.ResolveDestination(ctx, srv.Alias)
	if err != nil {
		b.Fatal(err)
	}
	// Connected, the session's shell started.
	e.waitFor(b, e.enqueue(b, srv.Alias, "true", false).ID, -1, 20*time.Second)

	var counted, stored, ssh, launch, first, tail []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t := &countTask{}
		start := time.Now()
		j := &jobs.Job{ID: fmt.Sprintf("bench%d", i), Target: srv.Alias, Host: d.Key, Destination: d.Spec, Session: "default", Command: cmd, Detached: true}
		r := x.Run(ctx, j, t)
		end := time.Now()
		if r.State != jobs.StateSucceeded || t.n != n {
			b.Fatalf("counted: %s %s, %d bytes", r.State, r.Error, t.n)
		}
		counted = append(counted, end.Sub(start))
		launch = append(launch, t.started.Sub(start))
		first = append(first, t.first.Sub(start))
		tail = append(tail, end.Sub(t.end))

		start = time.Now()
		sj := e.waitFor(b, e.enqueue(b, srv.Alias, cmd, true).ID, -1, 5*time.Minute)
		if sj.State != jobs.StateSucceeded || sj.OutputBytes != n {
			b.Fatalf("stored: %s %s, %d bytes", sj.State, sj.Error, sj.OutputBytes)
		}
		stored = append(stored, time.Since(start))

		start = time.Now()
		if err := exec.Command("ssh", "-F", srv.SSHConfig, srv.Alias, cmd).Run(); err != nil {
			b.Fatal(err)
		}
		ssh = append(ssh, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	// Each round's ratio to its own ssh run: the load of a shared machine
	// drifts between rounds.
	ratio := func(d []time.Duration) float64 {
		r := make([]float64, len(d))
		for i := range d {
			r[i] = ssh[i].Seconds() / d[i].Seconds()
		}
		slices.Sort(r)
		return r[len(r)/2]
	}
	b.ReportMetric(ratio(counted), "counted/ssh")
	b.ReportMetric(ratio(stored), "stored/ssh")
	b.ReportMetric(n/med(counted).Seconds()/1e6, "counted-MB/s")
	b.ReportMetric(n/med(stored).Seconds()/1e6, "stored-MB/s")
	b.ReportMetric(n/med(ssh).Seconds()/1e6, "ssh-MB/s")
	b.ReportMetric(float64(med(launch).Milliseconds()), "launch-ms")
	b.ReportMetric(float64(med(first).Milliseconds()), "first-ms")
	b.ReportMetric(float64(med(tail).Milliseconds()), "tail-ms")
}
