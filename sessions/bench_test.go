package sessions

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// BenchmarkTrue runs `true` on one OpenSSH sshd, side by side:
//
//	WarmPool       Pool.Run through an already open connection and shell
//	ControlMaster  `ssh` through a ControlMaster socket opened beforehand
//	ColdPool       Pool.Run on a fresh pool: resolve, connect, auth, shell
//	ColdSSH        a plain `ssh alias true`
//
//	go test -run '^$' -bench True -benchtime 200x ./sessions/
func BenchmarkTrue(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("OpenSSH sshd not installed")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("no ssh client")
	}
	srv := sshtest.StartOpenSSH(b, sshtest.Options{})
	ctx := context.Background()
	job := func(int) *jobs.Job {
		return &jobs.Job{ID: "bench", Target: srv.Alias, Session: "default", Command: "true"}
	}
	check := func(b *testing.B, r jobs.Result) {
		if r.State != jobs.StateSucceeded {
			b.Fatalf("true: %s %s", r.State, r.Error)
		}
	}

	b.Run("WarmPool", func(b *testing.B) {
		p := newTestPool(b, srv, PoolConfig{})
		check(b, executor(p).Run(ctx, job(0), newTestTask())) // connect and start the shell
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			check(b, executor(p).Run(ctx, job(i), newTestTask()))
		}
	})

	b.Run("ControlMaster", func(b *testing.B) {
		cm := filepath.Join(b.TempDir(), "cm")
		ssh := func(args ...string) *exec.Cmd {
			return exec.Command("ssh", append([]string{"-F", srv.SSHConfig, "-o", "ControlPath=" + cm}, args...)...)
		}
		// A persisted master (ssh -M -N -f would send no-more-sessions@openssh.com,
		// and its master then refuses the clients' sessions).
		if out, err := ssh("-o", "ControlMaster=auto", "-o", "ControlPersist=300", srv.Alias, "true").CombinedOutput(); err != nil {
			b.Fatalf("start master: %v: %s", err, out)
		}
		b.Cleanup(func() { ssh("-O", "exit", srv.Alias).Run() })
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if out, err := ssh("-o", "ControlMaster=no", srv.Alias, "true").CombinedOutput(); err != nil {
				b.Fatalf("ssh true: %v: %s", err, out)
			}
		}
	})

	b.Run("ColdPool", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p := NewPool(PoolConfig{Dialer: &sshdial.Dialer{Resolver: &sshconfig.Resolver{ConfigFile: srv.SSHConfig}}})
			check(b, executor(p).Run(ctx, job(i), newTestTask()))
			p.CloseAll()
		}
	})

	b.Run("ColdSSH", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("ssh", "-F", srv.SSHConfig, srv.Alias, "true")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("ssh true: %v: %s", err, out)
			}
		}
	})
}

// BenchmarkInterrupt times stopping `sleep 60` with SIGINT, from the
// request to the job's end, side by side with typing ^C into `ssh -tt`:
//
//	go test -run '^$' -bench Interrupt -benchtime 50x ./sessions/
func BenchmarkInterrupt(b *testing.B) {
	if !sshtest.HaveOpenSSH() {
		b.Skip("OpenSSH sshd not installed")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		b.Skip("no ssh client")
	}
	// A clean HOME for the remote user: this machine's root .bashrc runs
	// pyenv init, 80 ms for every exec channel.
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	const command = "echo started; sleep 60"

	b.Run("Pool", func(b *testing.B) {
		p := newTestPool(b, srv, PoolConfig{})
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			task := newTestTask()
			resc := make(chan jobs.Result, 1)
			go func() { resc <- runTask(p, srv, "default", command, task) }()
			task.waitOutput(b, "started\n")
			b.StartTimer()
			task.controls <- jobs.Control{Signal: "INT", Grace: 10 * time.Second}
			if r := waitResult(b, resc); r.State != jobs.StateCancelled {
				b.Fatalf("interrupt: %s %s", r.State, r.Error)
			}
		}
	})

	b.Run("SSH", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			cmd := exec.Command("ssh", "-F", srv.SSHConfig, "-tt", srv.Alias, command)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					b.Fatalf("ssh -tt: %v", err)
				}
				if strings.HasPrefix(line, "started") {
					break
				}
			}
			b.StartTimer()
			stdin.Write([]byte{0x03})
			io.Copy(io.Discard, r)
			if err := cmd.Wait(); err == nil {
				b.Fatal("ssh -tt: sleep was not interrupted")
			}
		}
	})
}

// TestHelperNC is not a test: it is the nc of sshtest.NCProxyCommand.
func TestHelperNC(t *testing.T) { sshtest.HelperNC() }
