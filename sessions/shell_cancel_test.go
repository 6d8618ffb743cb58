package sessions

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"golang.org/x/crypto/ssh"
)

// remoteRun runs command over a connection of its own (not the pool's), as an
// observer on the remote host would.
func remoteRun(t testing.TB, srv *sshtest.Server, command string) string {
	t.Helper()
	sess, err := dialTest(t, srv).NewSession()
	if err != nil {
		t.Fatalf("observer session: %v", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	if err != nil {
		t.Logf("observer %q: %v (%s)", command, err, out)
	}
	return string(out)
}

// ttyProcs lists the processes on tty other than the shell: the job's
// leftovers.
func ttyProcs(t testing.TB, srv *sshtest.Server, tty string, shellPID int) []string {
	t.Helper()
	var left []string
	for _, line := range strings.Split(remoteRun(t, srv, "ps -t "+tty+" -o pid=,stat=,args="), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == strconv.Itoa(shellPID) || strings.HasPrefix(f[1], "Z") {
			continue
		}
		left = append(left, strings.TrimSpace(line))
	}
	return left
}

// shellIdentity returns the tty and pid of the session's shell.
func shellIdentity(t testing.TB, p *Pool, srv *sshtest.Server, session string) (string, int) {
	t.Helper()
	task, res := runJob(t, p, srv, session, "tty; echo $$")
	f := strings.Fields(task.Output())
	if res.State != jobs.StateSucceeded || len(f) != 2 || !strings.HasPrefix(f[0], "/dev/") {
		t.Fatalf("tty; echo $$: %s %q", res.State, task.Output())
	}
	pid, _ := strconv.Atoi(f[1])
	return strings.TrimPrefix(f[0], "/dev/"), pid
}

func TestShellCancelKeepsShell(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cmd string
		prompt    bool // wait for a prompt instead of "started"
		signal    string
		grace     time.Duration
		within    time.Duration
	}{
		// INT and TERM: within 8 s, under the 10 s grace, proves the signal
		// itself stopped the job, not the escalation to KILL (3 s failed
		// under a CPU hog: 5.9 s).
		{"sleep INT", "echo started; sleep 6001", false, "INT", 10 * time.Second, 8 * time.Second},
		{"yes TERM", "echo started; yes > /dev/null", false, "TERM", 10 * time.Second, 8 * time.Second},
		{"pipeline KILL", "echo started; sleep 6002 | cat", false, "KILL", 0, 3 * time.Second},
		{"password prompt INT", "read -s -p 'Password: ' pw; echo got", true, "INT", 10 * time.Second, 8 * time.Second},
		{"password prompt KILL", "read -s -p 'Password: ' pw; echo got", true, "KILL", 0, 3 * time.Second},
		// Last: the trap stays in the shell (it runs there), so INT is
		// ignored from here on; the next job resets it.
		{"trap INT ignored", "trap '' INT; echo started; sleep 6003", false, "INT", 500 * time.Millisecond, 4 * time.Second},
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		p := newTestPool(t, srv, PoolConfig{})
		tty, shellPID := shellIdentity(t, p, srv, "default")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				task := newTestTask()
				resc := startJob(p, srv, "default", c.cmd, task)
				if c.prompt {
					if pr := task.waitPrompt(t); pr.Kind != jobs.PromptPassword {
						t.Errorf("prompt %+v", pr)
					}
				} else {
					task.waitOutput(t, "started\n")
					time.Sleep(100 * time.Millisecond) // past the fork
				}
				start := time.Now()
				task.controls <- jobs.Control{Signal: c.signal, Grace: c.grace}
				res := waitResult(t, resc)
				took := time.Since(start)
				if res.State != jobs.StateCancelled || took > c.within {
					t.Errorf("%s %q signal %s after %v (want cancelled within %v); output %q",
						res.State, res.Error, res.Signal, took, c.within, task.Output())
				}
				t.Logf("cancelled by %s in %v: %q", res.Signal, took.Round(time.Millisecond), res.Error)
				var left []string
				for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if left = ttyProcs(t, srv, tty, shellPID); len(left) == 0 {
						break
					}
				}
				if len(left) > 0 {
					t.Errorf("processes of the job survived on %s: %q", tty, left)
				}
				task, res = runJob(t, p, srv, "default", "trap - INT; echo after $$")
				if want := "after " + strconv.Itoa(shellPID) + "\n"; task.Output() != want || task.starts[0].NewShell {
					t.Errorf("next job: %q (want %q) new shell %v", task.Output(), want, task.starts)
				}
			})
		}
	})
}

// TestShellCancelShells: prompts and a cancel that keeps the shell work in
// dash, zsh and busybox ash as in bash.
func TestShellCancelShells(t *testing.T) {
	t.Parallel()
	for _, shPath := range []string{"/bin/sh", "/usr/bin/zsh", "/usr/bin/busybox"} {
		t.Run(shPath, func(t *testing.T) {
			srv := sshtest.StartInProcess(t, sshtest.Options{Shell: shPath})
			p := newTestPool(t, srv, PoolConfig{})
			tty, shellPID := shellIdentity(t, p, srv, "default")

			task := newTestTask()
			resc := startJob(p, srv, "default", `printf 'Value: '; read v; echo "You said: $v"; sleep 0.4`, task)
			if pr := task.waitPrompt(t); pr.Kind != jobs.PromptQuestion {
				t.Errorf("prompt %+v", pr)
			}
			task.controls <- jobs.Control{Input: []byte("magic\n")}
			if res := waitResult(t, resc); res.State != jobs.StateSucceeded || !strings.Contains(task.Output(), "You said: magic") {
				t.Errorf("answered: %s %q", res.State, task.Output())
			}

			for _, sig := range []string{"KILL", "INT"} {
				task = newTestTask()
				resc = startJob(p, srv, "default", "trap '' INT; echo started; sleep 6004", task)
				task.waitOutput(t, "started\n")
				time.Sleep(100 * time.Millisecond)
				task.controls <- jobs.Control{Signal: sig, Grace: 300 * time.Millisecond}
				if res := waitResult(t, resc); res.State != jobs.StateCancelled || res.Signal != "KILL" {
					t.Errorf("%s: %s %q signal %q", sig, res.State, res.Error, res.Signal)
				}
				if left := ttyProcs(t, srv, tty, shellPID); len(left) > 0 {
					time.Sleep(time.Second)
					if left = ttyProcs(t, srv, tty, shellPID); len(left) > 0 {
						t.Errorf("%s: survivors %q", sig, left)
					}
				}
				task, _ = runJob(t, p, srv, "default", "trap - INT; echo after $$")
				if want := "after " + strconv.Itoa(shellPID) + "\n"; task.Output() != want || task.starts[0].NewShell {
					t.Errorf("%s: next job %q (want %q) new shell %v", sig, task.Output(), want, task.starts)
				}
			}
		})
	}
}

// Where no channel can be opened to signal the job (a restricted account),
// an interrupt falls back to ^C.
func TestShellInterruptWithoutExecChannel(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		sh := startTestShell(t, srv)
		sh.open = func(context.Context) (*ssh.Session, error) {
			return nil, errors.New("no more channels")
		}
		task := newTestTask()
		outc := make(chan jobOutcome, 1)
		go func() { outc <- sh.run(context.Background(), "echo started; sleep 30; echo not reached", task) }()
		task.waitOutput(t, "started\n")
		task.controls <- jobs.Control{Signal: "INT", Grace: 10 * time.Second}
		select {
		case out := <-outc:
			if out.State != jobs.StateCancelled || out.shellGone || strings.Contains(task.Output(), "not reached") {
				t.Errorf("interrupt: %s %q shell gone %v, output %q", out.State, out.Error, out.shellGone, task.Output())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the interrupt did not stop the job")
		}
	})
}

// A loop that forks all the time holds the terminal only between its
// commands; interrupting it must not catch the shell in a fork (bash would
// then lose its terminal and exit), so the session's next job runs in the
// same shell, every time.
func TestShellInterruptForkingLoop(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		// The pool's log (each signal and what the kill script found) is
		// shown when the test fails: this test has been the suite's flakiest.
		p := newTestPool(t, srv, PoolConfig{Logger: testSlog(t)})
		for i := range 8 {
			if res := interruptStarted(t, p, srv, "default", "echo started; while :; do /bin/true; done"); res.State != jobs.StateCancelled || res.Signal != "INT" {
				t.Fatalf("interrupt %d: %s %q %q", i, res.State, res.Signal, res.Error)
			}
			next, res := runJob(t, p, srv, "default", "echo after")
			if next.Output() != "after\n" || res.State != jobs.StateSucceeded || len(next.starts) != 1 || next.starts[0].NewShell {
				t.Fatalf("after interrupt %d: %q %s, starts %v: the shell was lost", i, next.Output(), res.State, next.starts)
			}
		}
	})
}

// The kill script is typed inside single quotes.
func TestKillScriptHasNoQuote(t *testing.T) {
	t.Parallel()
	if strings.Contains(killScript, "'") {
		t.Fatal("killScript contains a single quote")
	}
}

// TestShellLateSignalSparesNextJob: a signal still on its way when its job
// ends by itself (its exec channel slow to open, as on a loaded machine)
// never reaches the shell's next job. The run used to return at once, and
// the signal's script then stopped whatever ran in the terminal's
// foreground: the next job (seen as a detached launch's mkdir "Killed").
func TestShellLateSignalSparesNextJob(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		ctx := context.Background()
		client := dialTest(t, srv)
		var hold atomic.Pointer[chan struct{}]
		open := func(ctx context.Context) (*ssh.Session, error) {
			if h := hold.Load(); h != nil {
				select {
				case <-*h:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return client.NewSession()
		}
		sh, err := startShell(ctx, open, goSpawn, "default", quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sh.close)

		release := make(chan struct{})
		hold.Store(&release)
		a := newTestTask()
		aDone := make(chan jobOutcome, 1)
		go func() { aDone <- sh.run(ctx, "echo started; sleep 1", a) }()
		a.waitOutput(t, "started")
		a.controls <- jobs.Control{Signal: "TERM", Grace: time.Hour}
		b := newTestTask()
		var bDone chan jobOutcome
		select {
		case <-aDone:
			// The run ended with its TERM held: the next job starts, and
			// the TERM is let go once it runs.
			bDone = make(chan jobOutcome, 1)
			go func() { bDone <- sh.run(ctx, "echo started; sleep 3; echo survived", b) }()
			b.waitOutput(t, "started")
			close(release)
		case <-time.After(5 * time.Second):
			// The run waits for its signal.
			close(release)
			<-aDone
			bDone = make(chan jobOutcome, 1)
			go func() { bDone <- sh.run(ctx, "echo started; sleep 3; echo survived", b) }()
		}
		if out := <-bDone; out.State != jobs.StateSucceeded || b.Output() != "started\nsurvived\n" {
			t.Fatalf("the next job: %s (%s), output %q; want succeeded with started, survived", out.State, out.Error, b.Output())
		}
	})
}

// The kill script says what its signal did: the command ended by it (read
// from its zombie's exit status in /proc, or reaped by the shell at once), or
// it is still running (a command that ignores the signal). The old script
// answered "group N" whatever happened, and so reported as hits the signals
// that a forking loop's commands never received.
func TestKillScriptReportsWhatTheSignalDid(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		sh := startTestShell(t, srv)
		ctx := context.Background()
		signal := func(cmd string, sigs ...string) {
			t.Helper()
			task := newTestTask()
			done := make(chan jobOutcome, 1)
			go func() { done <- sh.run(ctx, cmd, task) }()
			task.waitOutput(t, "started")
			for _, step := range sigs {
				sig, want, _ := strings.Cut(step, " ")
				detail, err := sh.signalJob(ctx, sig)
				if err != nil || !regexp.MustCompile(`^group [0-9]+ \((`+want+`)\)$`).MatchString(detail) {
					t.Errorf("%q, %s: %q, %v; want group N (%s)", cmd, sig, detail, err, want)
				}
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%q did not end", cmd)
			}
		}
		const ended = "ended by the signal|reaped"
		signal("echo started; sleep 30", "INT "+ended)
		signal(`echo started; (trap "" INT; exec sleep 30)`, "INT still running", "TERM "+ended)
		signal("echo started; sleep 30", "KILL "+ended)
	})
}
