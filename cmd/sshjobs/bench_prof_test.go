package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// BenchmarkOutputInProcess streams 90 MB through a job of an app in this
// process, for -cpuprofile and -memprofile: the path that BenchmarkTable's
// output rows measure from outside.
//
//	go test -run '^$' -bench OutputInProcess -benchtime 1x -cpuprofile cpu.out ./cmd/sshjobs
func BenchmarkOutputInProcess(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("needs OpenSSH's sshd")
	}
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	const n = 90_000_000
	cmd := fmt.Sprintf("yes %s | head -c %d", strings.Repeat("x", 99), n)
	for _, detached := range []bool{false, true} {
		b.Run(fmt.Sprintf("detached=%v", detached), func(b *testing.B) {
			a, err := openApp(context.Background(), testConfig(b, srv, b.TempDir()), modeRun)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			runTrue(b, a, srv.Alias)
			b.SetBytes(n)
			b.ResetTimer()
			for range b.N {
				j, err := a.submit(context.Background(), srv.Alias, jobs.Spec{Command: cmd, Detached: detached})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				var first, all time.Duration
				j, err = a.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 5 * time.Minute, Offset: -1, Progress: func(j *jobs.Job) {
					if first == 0 && j.OutputBytes > 0 {
						first = time.Since(start)
					}
					if all == 0 && j.OutputBytes == n {
						all = time.Since(start)
					}
				}})
				b.ReportMetric(first.Seconds(), "first-output-s")
				b.ReportMetric(all.Seconds(), "all-output-s")
				b.ReportMetric(time.Since(start).Seconds(), "final-s")
				if err != nil || j.State != jobs.StateSucceeded || j.OutputBytes != n {
					b.Fatalf("%v %v %d", j.State, err, j.OutputBytes)
				}
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapinuse-MiB")
			b.ReportMetric(float64(ms.HeapSys-ms.HeapReleased)/(1<<20), "heapheld-MiB")
			b.ReportMetric(float64(ms.Sys)/(1<<20), "gosys-MiB")
			b.ReportMetric(rssMiB(os.Getpid(), "VmRSS"), "rss-MiB")
			b.ReportMetric(rssMiB(os.Getpid(), "VmHWM"), "hwm-MiB")
		})
	}
}

// BenchmarkWarmMCPInProcess is warm/mcp of BenchmarkTable without the
// process boundary: ssh_run `true` through the MCP server over in-memory
// transports, for -cpuprofile (where the time of a warm call goes).
//
//	go test -run '^$' -bench WarmMCPInProcess -benchtime 300x -cpuprofile cpu.out ./cmd/sshjobs
func BenchmarkWarmMCPInProcess(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("needs OpenSSH's sshd")
	}
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	ctx := context.Background()
	a, err := openApp(ctx, testConfig(b, srv, b.TempDir()), modeServe)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := newMCPServer(a).Connect(ctx, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	call := func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ssh_run", Arguments: map[string]any{"host": srv.Alias, "command": "true"}})
		if err != nil || res.IsError {
			b.Fatalf("ssh_run: %v %v", err, res)
		}
	}
	call()
	measure(b, call)
}
