package faults

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// killRounds is how many times sshjobs is SIGKILLed in one run.
const killRounds = 5

// expected is what a job prints in full.
type expected struct {
	id       string
	detached bool
	want     []byte
}

// TestSIGKILLDuringOutput SIGKILLs sshjobs at random moments while shell
// and detached jobs stream output, five times, restarting it on the same
// database each time: served in-process (serve --no-daemon) and through the
// daemon that `sshjobs serve` starts (the daemon is what is killed). After
// each kill the database passes PRAGMA integrity_check and, once restarted,
// every job id answers with its committed output a prefix of what the job
// prints (nothing lost unaccounted), and at the end every detached job has
// completed byte-exact and every shell job is final.
func TestSIGKILLDuringOutput(t *testing.T) {
	for _, daemon := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-daemon", true: "daemon"}[daemon], func(t *testing.T) {
			srv := sshtest.StartOpenSSH(t, sshtest.Options{})
			db := filepath.Join(t.TempDir(), "sshjobs.db")
			env := serverEnv(srv, db)
			if daemon {
				rt, err := os.MkdirTemp("", "rt") // short: a socket path has 108 bytes
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(rt) })
				env = append(env, "SSHJOBS_DAEMON=on", "XDG_RUNTIME_DIR="+rt)
				t.Cleanup(func() {
					sshjobsCmd(t, env, "daemon", "stop", "-wait")
					if t.Failed() {
						b, _ := os.ReadFile(db + ".daemon.log")
						t.Logf("daemon log:\n%s", b)
					}
				})
			}
			var all []expected
			for round := 1; round <= killRounds; round++ {
				c := start(t, env, nil)
				checkCommitted(t, c, all)
				all = append(all, heavyJobs(t, c, round)...)
				// A random moment of the heavy output.
				time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
				if daemon {
					pid := daemonPID(t, env)
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Fatalf("kill daemon %d: %v", pid, err)
					}
					waitGone(t, pid)
					c.cs.Close()
				} else {
					c.kill()
				}
				integrity(t, db)
			}
			c := start(t, env, nil)
			checkCommitted(t, c, all)
			for _, e := range all {
				v := c.waitFinal(e.id, 120*time.Second)
				got := c.output(e.id)
				switch {
				case e.detached && (v.State != "succeeded" || string(got) != string(e.want)):
					t.Errorf("detached job %s: %s (%s), %d of %d bytes, first difference at %d", e.id, v.State, v.Error, len(got), len(e.want), firstDiff(got, e.want))
				case !v.final():
					t.Errorf("shell job %s still %s", e.id, v.State)
				}
			}
			integrity(t, db)
		})
	}
}

// heavyJobs starts a shell job printing 2 MB at full speed and a detached
// job printing 2.6 MB over several seconds (so that later kills hit it too).
func heavyJobs(t *testing.T, c *client, round int) []expected {
	t.Helper()
	p := fmt.Sprintf("r%ds", round)
	s := c.job("ssh_run", map[string]any{"host": "sshtest-openssh", "session": p, "timeout_s": 0,
		"command": seqCmd(p, 1, 200000)})
	var cmd strings.Builder
	var want []byte
	for k := 10; k < 20; k++ {
		pk := fmt.Sprintf("r%dd%d-", round, k)
		fmt.Fprintf(&cmd, "%s; sleep 0.3; ", seqCmd(pk, 1, 20000))
		want = append(want, lines(pk, 1, 20000)...)
	}
	cmd.WriteString("true")
	d := c.job("ssh_run", map[string]any{"host": "sshtest-openssh", "session": fmt.Sprintf("r%dd", round),
		"detach": true, "timeout_s": 0, "command": cmd.String()})
	return []expected{{id: s.JobID, want: lines(p, 1, 200000)}, {id: d.JobID, detached: true, want: want}}
}

// checkCommitted asks for every job and checks that its stored output is a
// prefix of what it prints, with any bytes that could not be stored counted.
func checkCommitted(t *testing.T, c *client, all []expected) {
	t.Helper()
	for _, e := range all {
		v := c.job("ssh_job", map[string]any{"job_id": e.id, "max_output": 0})
		got := c.output(e.id)
		// A running job's output grows between the two calls.
		if v.OutputLost == 0 && (int64(len(got)) < v.OutputBytes || !strings.HasPrefix(string(e.want), string(got))) {
			t.Errorf("job %s (%s): stored %d bytes of %d, not a prefix of its output (first difference at %d)", e.id, v.State, len(got), v.OutputBytes, firstDiff(got, e.want))
		}
		if v.OutputLost > 0 && v.final() && int64(len(got))+v.OutputLost != v.OutputBytes {
			t.Errorf("job %s: %d bytes stored + %d lost != %d produced", e.id, len(got), v.OutputLost, v.OutputBytes)
		}
	}
}

// sshjobsCmd runs the built binary with env and returns its stdout.
func sshjobsCmd(t *testing.T, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	return string(out), err
}

// daemonPID is the pid of the daemon serving env's database.
func daemonPID(t *testing.T, env []string) int {
	t.Helper()
	out, err := sshjobsCmd(t, env, "daemon", "status", "-json")
	var st struct {
		PID int `json:"pid"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.PID <= 0 {
		t.Fatalf("daemon status: %v %q", err, out)
	}
	return st.PID
}

// waitGone waits until pid has exited (it may stay a zombie of its parent).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive 10s after SIGKILL", pid)
		}
	}
}
