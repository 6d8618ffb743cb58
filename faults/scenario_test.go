package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// Keepalive settings of the test hosts: a dead link is declared after
// keepaliveMax unanswered keepalives, one every keepaliveInterval.
const (
	keepaliveInterval = 2 * time.Second
	keepaliveMax      = 3
)

// lostBound is how soon after a silent cut a shell job must end lost: the
// keepalive misses (the first ping may go out up to one interval after the
// cut, and each waits one interval for its answer), plus slack for a loaded
// machine to record it.
const lostBound = (keepaliveMax+1)*keepaliveInterval + 5*time.Second

// faultyHost writes an ssh_config with the alias "faulty" for srv, with short
// keepalives and a bounded connect, and returns its path.
func faultyHost(t *testing.T, srv *sshtest.Server) string {
	path := filepath.Join(t.TempDir(), "ssh_config")
	sshtest.WriteConfig(t, path, "faulty", srv, srv.KnownHosts,
		fmt.Sprintf("ServerAliveInterval %d", keepaliveInterval/time.Second),
		fmt.Sprintf("ServerAliveCountMax %d", keepaliveMax),
		"ConnectTimeout 5")
	return path
}

// faultScenario is a shell job and a detached job in flight while a fault
// hits the connection under them.
type faultScenario struct {
	c        *client
	gate     string // the detached job prints its second half once this exists
	shell    string // job ids
	detached string
	want     []byte // the detached job's whole output
}

// startScenario starts, on host "faulty", a shell job that runs until killed
// and a detached job that prints 20000 lines, waits for the gate, and prints
// 20000 more; it returns once both are running and the first half is stored.
func startScenario(t *testing.T, c *client) *faultScenario {
	t.Helper()
	sc := &faultScenario{c: c, gate: filepath.Join(t.TempDir(), "gate")}
	sc.want = append(lines("a", 1, 20000), lines("b", 1, 20000)...)
	d := c.job("ssh_run", map[string]any{"host": "faulty", "session": "det", "detach": true, "timeout_s": 0,
		"command": seqCmd("a", 1, 20000) + "; until [ -e " + sc.gate + " ]; do sleep 0.1; done; " + seqCmd("b", 1, 20000)})
	sc.detached = d.JobID
	s := c.job("ssh_run", map[string]any{"host": "faulty", "session": "sh", "timeout_s": 5,
		"command": "echo started; sleep 600"})
	sc.shell = s.JobID
	deadline := time.Now().Add(30 * time.Second)
	for {
		dv := c.job("ssh_job", map[string]any{"job_id": sc.detached, "max_output": 0})
		sv := c.job("ssh_job", map[string]any{"job_id": sc.shell, "max_output": 0})
		if dv.OutputBytes >= int64(len(lines("a", 1, 20000))) && sv.OutputBytes > 0 {
			return sc
		}
		if dv.final() || sv.final() || time.Now().After(deadline) {
			t.Fatalf("before the fault: detached %+v, shell %+v", dv, sv)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// duringFault makes the calls an agent would while the connection is dead,
// each bounded by its wait plus one second, until the shell job ends lost;
// it returns how long after cut its row says it ended.
func (sc *faultScenario) duringFault(t *testing.T, cut time.Time) time.Duration {
	t.Helper()
	c := sc.c
	// The detached job finishes while nobody can see it.
	if err := os.WriteFile(sc.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A new session on the same host: it must not block the call past its
	// wait, whatever the dial does.
	other := c.job("ssh_run", map[string]any{"host": "faulty", "session": "other", "command": "echo other", "timeout_s": 2})
	for {
		v := c.job("ssh_job", map[string]any{"job_id": sc.shell, "wait_s": 1, "max_output": 0})
		c.bounded("ssh_jobs", map[string]any{"limit": 5})
		c.bounded("ssh_sessions", map[string]any{})
		c.job("ssh_job", map[string]any{"job_id": sc.detached, "wait_s": 1, "max_output": 100})
		c.job("ssh_job", map[string]any{"job_id": other.JobID, "wait_s": 1})
		if v.final() {
			took := v.ended(t).Sub(cut)
			if v.State != "lost" {
				t.Errorf("shell job after the fault: %s (%s), want lost", v.State, v.Error)
			}
			t.Logf("shell job %s %v after the fault: %s", v.State, took.Round(time.Millisecond), v.Error)
			return took
		}
		if time.Since(cut) > 2*lostBound {
			t.Fatalf("shell job still %s %v after the fault", v.State, time.Since(cut).Round(time.Millisecond))
		}
	}
}

// afterFault checks that the detached job completes byte-exact and that the
// host works again.
func (sc *faultScenario) afterFault(t *testing.T) {
	t.Helper()
	c := sc.c
	v := c.waitFinal(sc.detached, 120*time.Second)
	if v.State != "succeeded" || v.OutputLost != 0 {
		t.Fatalf("detached job after the fault: %+v", v)
	}
	if got := c.output(sc.detached); string(got) != string(sc.want) {
		t.Fatalf("detached job output: %d bytes, want %d; first difference at %d", len(got), len(sc.want), firstDiff(got, sc.want))
	}
	again := c.job("ssh_run", map[string]any{"host": "faulty", "session": "sh", "command": "echo back", "timeout_s": 60})
	if again.State != "succeeded" || again.Output != "back\n" {
		t.Fatalf("a command after the fault: %+v", again)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
