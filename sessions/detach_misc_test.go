package sessions_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// TestDetachedShells launches from sessions whose login shell differs: the
// launcher is typed into that shell, and the command runs under the same
// kind of shell.
func TestDetachedShells(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"/bin/dash", "/usr/bin/zsh", "/bin/bash"} {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			if _, err := os.Stat(sh); err != nil {
				t.Skipf("%s not installed", sh)
			}
			srv := sshtest.StartInProcess(t, sshtest.Options{Shell: sh})
			pool := newDetachPool(t, srv.SSHConfig, "")
			e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
			e.waitFor(t, e.enqueue(t, srv.Alias, "cd /tmp; export SJ_X='it''s'", false).ID, -1, 20*time.Second)
			j := e.waitFor(t, e.enqueue(t, srv.Alias, "echo \"$PWD $SJ_X\"; printf 'no newline'; exit 4", true).ID, -1, 20*time.Second)
			if out := e.output(t, j.ID); out != "/tmp its\nno newline" || j.State != jobs.StateFailed || exitCode(j) != "4" {
				t.Errorf("%s: %q %s exit %s (%s)", sh, out, j.State, exitCode(j), j.Error)
			}
			// Quotes, a heredoc, a tab and a non-ASCII byte survive the
			// launcher's own quoting.
			j2 := e.waitFor(t, e.enqueue(t, srv.Alias, "cat <<'EOF'\na 'b' \"c\" $d\t\u00e9\nEOF", true).ID, -1, 20*time.Second)
			if out := e.output(t, j2.ID); out != "a 'b' \"c\" $d\t\u00e9\n" || j2.State != jobs.StateSucceeded {
				t.Errorf("%s: heredoc: %q %s (%s)", sh, out, j2.State, j2.Error)
			}
			a := attachOf(t, j)
			if cache := os.Getenv("XDG_CACHE_HOME"); cache == "" && !strings.HasPrefix(a.Spool, filepath.Join(srv.Home, ".cache", "sshjobs")+"/") {
				t.Errorf("default spool %q", a.Spool)
			}
		})
	}
}

// TestDetachedNoInputAndGoneSpool: a detached job has no terminal, so input
// is refused; a spool removed under a running job ends it lost, with its
// output so far kept.
func TestDetachedNoInputAndGoneSpool(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	spool := t.TempDir()
	pool := newDetachPool(t, srv.SSHConfig, spool)
	e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
	d := e.enqueue(t, srv.Alias, "echo started; sleep 300", true)
	e.waitFor(t, d.ID, 0, 20*time.Second)
	if err := e.Input(context.Background(), d.ID, []byte("y\n"), false); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("input to a detached job: %v", err)
	}
	j, _ := e.Get(context.Background(), d.ID)
	a := attachOf(t, j)
	if err := os.RemoveAll(a.Spool); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-a.PGID, syscall.SIGKILL)
	// The follow keeps its descriptor on out: only a new follow (after a
	// dropped connection) finds the folder gone.
	srv.DropConnections()
	j = e.waitFor(t, d.ID, -1, 20*time.Second)
	if j.State != jobs.StateLost || !strings.Contains(j.Error, "is gone") || e.output(t, d.ID) != "started\n" {
		t.Errorf("spool removed: %s %q, output %q", j.State, j.Error, e.output(t, d.ID))
	}
}

// TestOrphanSpools lists the spool folders of jobs that the caller does not
// know, and deletes nothing.
func TestOrphanSpools(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	spool := t.TempDir()
	pool := newDetachPool(t, srv.SSHConfig, spool)
	for _, id := range []string{"known-1", "orphan-1", "orphan 2"} {
		os.MkdirAll(filepath.Join(spool, id), 0o700)
		os.WriteFile(filepath.Join(spool, id, "out"), []byte("x"), 0o600)
	}
	os.MkdirAll(filepath.Join(spool, "not-a-spool"), 0o700)
	got, err := pool.OrphanSpools(context.Background(), srv.Alias, func(id string) bool { return id == "known-1" })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(spool, "orphan 2"), filepath.Join(spool, "orphan-1")}
	if !slices.Equal(got, want) {
		t.Errorf("orphans %q, want %q", got, want)
	}
	for _, id := range []string{"known-1", "orphan-1", "orphan 2"} {
		if _, err := os.Stat(filepath.Join(spool, id, "out")); err != nil {
			t.Errorf("spool %s touched: %v", id, err)
		}
	}
	// A host with no spool folder yet has no orphans.
	empty := newDetachPool(t, srv.SSHConfig, filepath.Join(spool, "none"))
	if got, err := empty.OrphanSpools(context.Background(), srv.Alias, func(string) bool { return false }); err != nil || len(got) != 0 {
		t.Errorf("no spool folder: %q %v", got, err)
	}
}

// TestDetachedKillAfter: kill_after_s stops a detached job like a cancel.
func TestDetachedKillAfter(t *testing.T) {
	t.Parallel()
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	pool := newDetachPool(t, srv.SSHConfig, t.TempDir())
	e := newDetachEngine(t, filepath.Join(t.TempDir(), "sshjobs.db"), pool, 15*time.Second)
	d, err := e.Enqueue(context.Background(), jobs.Spec{Target: srv.Alias, Host: srv.Alias, Command: "echo started; exec sleep 300", Detached: true, KillAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	j := e.waitFor(t, d.ID, -1, 20*time.Second)
	a := attachOf(t, j)
	if j.State != jobs.StateCancelled || j.Signal != "INT" || !strings.Contains(j.Error, "kill_after") || e.output(t, d.ID) != "started\n" {
		t.Errorf("kill_after: %s %q (%s), output %q", j.State, j.Signal, j.Error, e.output(t, d.ID))
	}
	if live := remoteGroup(t, a.PGID); len(live) > 0 {
		t.Errorf("process group %d after kill_after: %q", a.PGID, live)
	}
}
