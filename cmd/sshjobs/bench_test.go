package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// BenchmarkTrue runs `true` on one OpenSSH sshd, side by side:
//
//	warm/sshjobs        a job through a warm pooled shell: job row, claim,
//	                    run, output commit and final state included
//	warm/controlmaster  ssh over an already open ControlMaster socket
//	cold/sshjobs        a new process's first command: open the database,
//	                    connect, authenticate, start the shell, run
//	cold/ssh            plain `ssh host true`
//
// Each reports its median as p50-ms (the machine is shared: compare the
// ratios within one run).
func BenchmarkTrue(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("needs OpenSSH's sshd")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("needs the OpenSSH client")
	}
	// A clean HOME for the remote user: this machine's root .bashrc runs
	// pyenv (0.1-0.3 s), and bash sources it for every ssh exec, which would
	// measure pyenv rather than either side.
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	dir := b.TempDir()
	cfg := testConfig(b, srv, dir)
	ctx := context.Background()
	masters := 0

	b.Run("warm/sshjobs", func(b *testing.B) {
		a, err := openApp(ctx, cfg, modeRun)
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		runTrue(b, a, srv.Alias) // connect and start the shell
		measure(b, func() { runTrue(b, a, srv.Alias) })
	})
	b.Run("warm/controlmaster", func(b *testing.B) {
		// A fresh socket per run: the framework runs this more than once.
		masters++
		sock := filepath.Join(srv.Dir, fmt.Sprintf("cm%d", masters))
		master := exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlMaster=yes", "-o", "ControlPath="+sock, "-N", srv.Alias)
		if err := master.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlPath="+sock, "-O", "exit", srv.Alias).Run()
			master.Wait()
		}()
		ssh := func() error {
			return exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlMaster=no", "-o", "ControlPath="+sock, srv.Alias, "true").Run()
		}
		// Wait for the master itself: until it is up, ssh quietly connects on
		// its own, which would measure the cold path.
		check := func() error {
			return exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlPath="+sock, "-O", "check", srv.Alias).Run()
		}
		for deadline := time.Now().Add(10 * time.Second); check() != nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("ControlMaster did not come up")
			}
		}
		measure(b, func() {
			if err := ssh(); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("warm/cli-daemon", func(b *testing.B) {
		// `sshjobs run HOST -- true` as a person types it: a new process each
		// time, through the daemon's warm connection and shell.
		bin := buildBinary(b)
		env := daemonEnv(b, srv)
		defer sshjobsCmd(b, bin, env, "daemon", "stop", "-wait")
		run := func() {
			if code, _ := sshjobsCmd(b, bin, env, "run", srv.Alias, "--", "true"); code != 0 {
				b.Fatalf("sshjobs run: exit %d", code)
			}
		}
		run() // start the daemon, connect, start the shell
		measure(b, run)
	})
	b.Run("cold/sshjobs", func(b *testing.B) {
		measure(b, func() {
			a, err := openApp(ctx, cfg, modeRun)
			if err != nil {
				b.Fatal(err)
			}
			runTrue(b, a, srv.Alias)
			a.Close()
		})
	})
	b.Run("cold/ssh", func(b *testing.B) {
		measure(b, func() {
			if err := exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlPath=none", srv.Alias, "true").Run(); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func runTrue(b *testing.B, a *app, host string) {
	j, err := a.submit(context.Background(), host, jobs.Spec{Command: "true"})
	if err != nil {
		b.Fatal(err)
	}
	j, err = a.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: time.Minute, Offset: -1})
	if err != nil || j.State != jobs.StateSucceeded {
		b.Fatalf("true: %v %v", j.State, err)
	}
}

// measure runs f b.N times and reports the median.
func measure(b *testing.B, f func()) {
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		f()
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
}
