package faults

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// smallDisk mounts a tmpfs of size (e.g. "8m") of the test's own, and
// unmounts it when the test ends.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "sshjobs-faults", dir).CombinedOutput(); err != nil {
		if os.Getenv("SSHJOBS_REQUIRE_NETNS") == "1" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("faults: SKIPPED, NOT TESTED: cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return p
		}
	}
}

func remount(t *testing.T, dir, how string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+how, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v %s", how, dir, err, out)
	}
}

// TestDiskFullAndReadOnly puts the database on a small tmpfs, fills it, and
// later makes it read-only: calls that must write answer with a clear
// error (or a job that says what it could not store), sshjobs keeps
// serving, no stored row is damaged, and writes resume once space (or
// write access) returns.
func TestDiskFullAndReadOnly(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{})
	disk := smallDisk(t, "8m")
	db := filepath.Join(disk, "sshjobs.db")
	c := start(t, serverEnv(srv, db), nil)
	before := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo before", "timeout_s": 30})
	if before.State != "succeeded" || before.Output != "before\n" {
		t.Fatalf("before: %+v", before)
	}

	// A job that prints once told to, running when the disk fills.
	gate := filepath.Join(t.TempDir(), "gate")
	mid := c.job("ssh_run", map[string]any{"host": srv.Alias, "session": "mid", "timeout_s": 0,
		"command": "until [ -e " + gate + " ]; do sleep 0.1; done; " + seqCmd("m", 1, 20000)})

	filler := fill(t, disk)
	for i, cmd := range []string{"echo full", seqCmd("f", 1, 20000)} {
		res, _ := c.call("ssh_run", map[string]any{"host": srv.Alias, "command": cmd, "timeout_s": 30})
		t.Logf("disk full, ssh_run %d: isError=%v %.300s", i, res.IsError, text(res))
		if !res.IsError {
			continue // it ran: the disk had a page left
		}
		if !strings.Contains(text(res), "database or disk is full") {
			t.Errorf("disk full: the error does not say so: %q", text(res))
		}
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The running job's output has nowhere to go for a while.
	c.job("ssh_job", map[string]any{"job_id": mid.JobID, "wait_s": 3, "max_output": 0})
	if v := c.job("ssh_job", map[string]any{"job_id": before.JobID}); v.Output != "before\n" {
		t.Errorf("disk full: an earlier job reads %+v", v)
	}
	os.Remove(filler)
	after := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo after", "timeout_s": 30})
	if after.State != "succeeded" || after.Output != "after\n" {
		t.Fatalf("after space returned: %+v", after)
	}
	m := c.waitFinal(mid.JobID, 60*time.Second)
	got := c.output(mid.JobID)
	t.Logf("the job running while the disk was full: %s, %d bytes, %d stored, %d lost", m.State, m.OutputBytes, len(got), m.OutputLost)
	if m.State != "succeeded" || int64(len(got))+m.OutputLost != m.OutputBytes || m.OutputBytes != int64(len(lines("m", 1, 20000))) {
		t.Errorf("the job running while the disk was full: %s (%s), %d bytes produced, %d stored, %d lost", m.State, m.Error, m.OutputBytes, len(got), m.OutputLost)
	}
	// What was stored is the output less one hole of OutputLost bytes.
	want := lines("m", 1, 20000)
	a := firstDiff(got, want)
	if b := a + int(m.OutputLost); b > len(want) || string(got[a:]) != string(want[b:]) {
		t.Errorf("the job running while the disk was full: stored output is not the output less a hole of %d bytes at %d", m.OutputLost, a)
	}
	c.cs.Close()
	integrity(t, db)

	// A read-only database (a volume mounted read-only): a clear error at
	// once, no crash, and all is well once it is writable again.
	remount(t, disk, "ro")
	cmd := exec.Command(bin, "run", srv.Alias, "--", "echo ro")
	cmd.Env = append(os.Environ(), serverEnv(srv, db)...)
	out, err := cmd.CombinedOutput()
	t.Logf("read-only: sshjobs run: %v %s", err, out)
	if err == nil || !strings.Contains(string(out), "read-only") || strings.Contains(string(out), "goroutine ") {
		t.Errorf("read-only database: sshjobs run: %v %q, want a failure that says read-only", err, out)
	}
	remount(t, disk, "rw")
	c = start(t, serverEnv(srv, db), nil)
	again := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo again", "timeout_s": 30})
	if again.State != "succeeded" || again.Output != "again\n" {
		t.Fatalf("after write access returned: %+v", again)
	}
	for _, id := range []string{before.JobID, after.JobID, again.JobID, mid.JobID} {
		c.job("ssh_job", map[string]any{"job_id": id})
	}
	integrity(t, db)
}
