package sessions_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// busyboxPath returns a folder holding only busybox applets, with or without
// setsid: the tools of a small host.
func busyboxPath(t *testing.T, bb string, setsid bool) string {
	t.Helper()
	dir := t.TempDir()
	applets := []string{"sh", "cat", "dd", "wc", "mkdir", "chmod", "mv", "rm", "sleep", "kill", "ps", "true", "echo", "id", "ls", "pwd"}
	if setsid {
		applets = append(applets, "setsid")
	}
	for _, a := range applets {
		if err := os.Symlink(bb, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDetachedBusybox runs detached jobs on a host whose login shell and
// tools are busybox's (in-process server: an openssh login would reset PATH
// to the system's coreutils), with and without setsid: a dropped connection
// mid-way, then a cancel that must empty the job's process group.
func TestDetachedBusybox(t *testing.T) {
	t.Parallel()
	var bb string
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			bb = p
			break
		}
	}
	if bb == "" {
		t.Skip("busybox not installed")
	}
	for _, setsid := range []bool{true, false} {
		name := "setsid"
		if !setsid {
			name = "no-setsid"
		}
		t.Run(name, func(t *testing.T) {
			path := busyboxPath(t, bb, setsid)
			srv := sshtest.StartInProcess(t, sshtest.Options{Shell: bb, Env: []string{"PATH=" + path}})
			pool := newDetachPool(t, srv.SSHConfig, t.TempDir())
			e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
			// The login profile puts the system's folders back on PATH.
			e.waitFor(t, e.enqueue(t, srv.Alias, "export PATH="+path, false).ID, -1, 20*time.Second)
			if j := e.waitFor(t, e.enqueue(t, srv.Alias, "command -v setsid", false).ID, -1, 10*time.Second); (j.State == jobs.StateSucceeded) != setsid {
				t.Fatalf("command -v setsid: %s %q", j.State, e.output(t, j.ID))
			}

			d := e.enqueue(t, srv.Alias, countCmd(30), true)
			e.waitFor(t, d.ID, int64(len(countOutput(10))), 20*time.Second)
			srv.DropConnections()
			checkCount(t, e, e.waitFor(t, d.ID, -1, 60*time.Second), 30)

			c := e.enqueue(t, srv.Alias, "echo started; sleep 300", true)
			e.waitFor(t, c.ID, 0, 20*time.Second)
			j, _ := e.Get(context.Background(), c.ID)
			a := attachOf(t, j)
			if a.PGID != a.PID {
				t.Errorf("attach %+v: the job does not lead its process group", a)
			}
			if _, err := e.Cancel(context.Background(), c.ID, "INT", time.Second); err != nil {
				t.Fatal(err)
			}
			j = e.waitFor(t, c.ID, -1, 20*time.Second)
			if j.State != jobs.StateCancelled || j.Signal != "INT" {
				t.Errorf("cancel: %s %q (%s)", j.State, j.Signal, j.Error)
			}
			if live := remoteGroup(t, a.PGID); len(live) > 0 {
				t.Errorf("process group %d after cancel: %s", a.PGID, strings.Join(live, "; "))
			}
		})
	}
}
