package jobs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ownerGone takes an owner for gone only with proof: no row, a pid on this
// kernel and pid namespace that is dead or recycled, or else a heartbeat
// older than the grace (and, on this host without a start identity, a pid
// that no process has).
func TestOwnerGone(t *testing.T) {
	e := &Engine{cfg: Config{Owner: "me", OwnerGrace: time.Minute}, self: OwnerInfo{ID: "me", Hostname: hostname()}}
	now := time.Now()
	fresh, stale := now.Add(-time.Second), now.Add(-2*time.Minute)
	me := procStart(os.Getpid())

	// A process that has ended, with the start identity it had.
	child := exec.Command("sleep", "0.05")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadPID, deadStart := child.Process.Pid, procStart(child.Process.Pid)
	child.Wait()

	cases := []struct {
		name  string
		o     OwnerInfo
		gone  bool
		exact bool // needs /proc
	}{
		{"itself", OwnerInfo{ID: "me", Hostname: "elsewhere"}, false, false},
		{"no row", OwnerInfo{ID: "x"}, true, false},
		{"here, alive, stale heartbeat (stopped or asleep)", OwnerInfo{ID: "x", Hostname: hostname(), PID: os.Getpid(), ProcStart: me, Heartbeat: stale}, false, true},
		{"here, dead, fresh heartbeat", OwnerInfo{ID: "x", Hostname: hostname(), PID: deadPID, ProcStart: deadStart, Heartbeat: fresh}, true, true},
		{"here, pid recycled", OwnerInfo{ID: "x", Hostname: hostname(), PID: os.Getpid(), ProcStart: recycled(me), Heartbeat: fresh}, true, true},
		{"elsewhere, fresh heartbeat", OwnerInfo{ID: "x", Hostname: "elsewhere", PID: deadPID, ProcStart: "boot ns 1", Heartbeat: fresh}, false, false},
		{"elsewhere, stale heartbeat", OwnerInfo{ID: "x", Hostname: "elsewhere", PID: os.Getpid(), ProcStart: "boot ns 1", Heartbeat: stale}, true, false},
		{"this host, other pid namespace, stale", OwnerInfo{ID: "x", Hostname: hostname(), PID: os.Getpid(), ProcStart: "boot ns 1", Heartbeat: stale}, true, false},
		{"this host, no start identity, pid alive, stale", OwnerInfo{ID: "x", Hostname: hostname(), PID: os.Getpid(), Heartbeat: stale}, false, false},
		{"this host, no start identity, pid dead, stale", OwnerInfo{ID: "x", Hostname: hostname(), PID: deadPID, Heartbeat: stale}, true, false},
		{"this host, no start identity, fresh", OwnerInfo{ID: "x", Hostname: hostname(), PID: deadPID, Heartbeat: fresh}, false, false},
	}
	for _, c := range cases {
		if c.exact && me == "" {
			continue // no /proc here
		}
		if got := e.ownerGone(c.o, now); got != c.gone {
			t.Errorf("%s: gone = %v, want %v", c.name, got, c.gone)
		}
	}
}

// recycled is start identity s with another start time: the same pid,
// taken by a later process.
func recycled(s string) string {
	f := strings.Fields(s)
	if len(f) != 3 {
		return s
	}
	return f[0] + " " + f[1] + " 1" + f[2]
}
