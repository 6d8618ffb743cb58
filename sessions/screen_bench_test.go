package sessions

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/internal/term"
	"github.com/sshjobs/sshjobs/jobs"
)

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countTask is a Task that only counts the output.
type countTask struct {
	n        atomic.Int64
	controls chan jobs.Control
}

func (t *countTask) Write(p []byte) (int, error)     { t.n.Add(int64(len(p))); return len(p), nil }
func (t *countTask) Prompt(*jobs.Prompt)             {}
func (t *countTask) Started(jobs.Start)              {}
func (t *countTask) Controls() <-chan jobs.Control   { return t.controls }
func (t *countTask) Flush(ctx context.Context) error { return nil }

// BenchmarkScreenThroughput measures what a job's screen costs a shell job
// printing 90 MB in lines of 100 bytes (as a build log would), on one
// OpenSSH sshd. Each op runs, in turn (the machine is shared: the ratios
// within one run are what counts):
//
//	noscreen  the output path without the screen's tail: the reference
//	screen    as shipped, nobody asking for the screen (the tail only)
//	asked     the same, the screen asked for every 250 ms while it runs
//	ssh-tt    `ssh -tt` printing the same: the ceiling of a PTY
//
// and reports each one's MB/s, the ratios to noscreen, the CPU time this
// process spent per job, and the time an ask took (mean and slowest).
//
//	go test -run '^$' -bench ScreenThroughput -benchtime 3x ./sessions/
func BenchmarkScreenThroughput(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("OpenSSH sshd not installed")
	}
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	const outBytes = 90_000_000
	command := fmt.Sprintf("yes %s | head -c %d", strings.Repeat("x", 99), outBytes)
	p := newTestPool(b, srv, PoolConfig{})
	x := executor(p)
	d, err := x.ResolveDestination(context.Background(), srv.Alias)
	if err != nil {
		b.Fatal(err)
	}
	var seq int
	var asks, slowest time.Duration
	cpu := map[bool]time.Duration{}
	var cpuOff time.Duration
	var nAsks int
	job := func(ask bool) time.Duration {
		seq++
		j := &jobs.Job{ID: fmt.Sprintf("bench-%d", seq), Target: srv.Alias, Host: d.Key, Destination: d.Spec,
			Session: "default", Command: command}
		t := &countTask{controls: make(chan jobs.Control)}
		done := make(chan struct{})
		asked := make(chan struct{})
		go func() {
			defer close(asked)
			if !ask {
				return
			}
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				start := time.Now()
				if _, err := x.Screen(context.Background(), j.ID, jobs.ScreenOptions{}); err == nil {
					took := time.Since(start)
					asks += took
					slowest = max(slowest, took)
					nAsks++
				}
			}
		}()
		start, cpu0 := time.Now(), cpuTime()
		r := x.Run(context.Background(), j, t)
		took := time.Since(start)
		close(done)
		<-asked
		cpu[ask] += cpuTime() - cpu0
		if r.State != jobs.StateSucceeded || t.n.Load() != outBytes {
			b.Fatalf("%s: %d bytes (%s)", r.State, t.n.Load(), r.Error)
		}
		return took
	}
	// Connect and start the shell outside the measurements.
	if r := x.Run(context.Background(), &jobs.Job{ID: "warm", Target: srv.Alias, Host: d.Key, Destination: d.Spec,
		Session: "default", Command: "true"}, &countTask{}); r.State != jobs.StateSucceeded {
		b.Fatalf("true: %s %s", r.State, r.Error)
	}
	var noscreen, screen, asked, ssh time.Duration
	b.SetBytes(outBytes)
	for range b.N {
		screensOff = true
		c := cpu[false]
		noscreen += job(false)
		cpuOff += cpu[false] - c
		cpu[false] = c
		screensOff = false
		screen += job(false)
		asked += job(true)
		start := time.Now()
		if err := exec.Command("ssh", "-F", srv.SSHConfig, "-tt", srv.Alias, command).Run(); err != nil {
			b.Fatal(err)
		}
		ssh += time.Since(start)
	}
	mbs := func(d time.Duration) float64 { return float64(outBytes) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(noscreen), "noscreen-MB/s")
	b.ReportMetric(mbs(screen), "screen-MB/s")
	b.ReportMetric(mbs(asked), "asked-MB/s")
	b.ReportMetric(mbs(ssh), "ssh-tt-MB/s")
	b.ReportMetric(noscreen.Seconds()/screen.Seconds(), "screen/noscreen")
	// CPU time of this process (the client side) per job: less at the mercy
	// of the other processes on the machine than the wall clock.
	perJob := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(perJob(cpuOff), "noscreen-cpu-ms")
	b.ReportMetric(perJob(cpu[false]), "screen-cpu-ms")
	b.ReportMetric(perJob(cpu[true]), "asked-cpu-ms")
	b.ReportMetric(noscreen.Seconds()/asked.Seconds(), "asked/noscreen")
	if nAsks > 0 {
		b.ReportMetric(float64(asks.Microseconds())/float64(nAsks)/1000, "ms/ask")
		b.ReportMetric(float64(slowest.Microseconds())/1000, "slowest-ms/ask")
	}
}

// BenchmarkScreenWrite is the output path's share of the screen, the copy
// into the tail, side by side with the cleaner every byte of a shell job's
// output goes through anyway (lines of 100 bytes in 32 KiB reads):
//
//	go test -run '^$' -bench ScreenWrite ./sessions/
func BenchmarkScreenWrite(b *testing.B) {
	chunk := []byte(strings.Repeat(strings.Repeat("x", 98)+"\r\n", 32<<10/100))
	b.Run("tail", func(b *testing.B) {
		s := newScreen(ptyCols, ptyRows)
		b.SetBytes(int64(len(chunk)))
		now := time.Now()
		for range b.N {
			s.write(chunk, now)
		}
	})
	b.Run("cleaner", func(b *testing.B) {
		var cl term.Cleaner
		b.SetBytes(int64(len(chunk)))
		for range b.N {
			cl.Write(chunk)
		}
	})
}
