package faults

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// TestReattachWithoutAttachData: sshjobs killed after a detached job's
// launcher started it but before the job's attach data was committed (a
// window the SIGKILL test hits) leaves a running detached job with no attach
// data. The next process finds the job's spool folder by its id, records it
// and follows the job to its end, byte-exact, rather than ending it lost
// while it runs on.
func TestReattachWithoutAttachData(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{})
	db := filepath.Join(t.TempDir(), "sshjobs.db")
	env := serverEnv(srv, db)
	gate := filepath.Join(t.TempDir(), "gate")
	c := start(t, env, nil)
	want := append(lines("x", 1, 1000), lines("y", 1, 1000)...)
	d := c.job("ssh_run", map[string]any{"host": srv.Alias, "detach": true, "timeout_s": 0,
		"command": seqCmd("x", 1, 1000) + "; until [ -e " + gate + " ]; do sleep 0.1; done; " + seqCmd("y", 1, 1000)})
	for {
		v := c.job("ssh_job", map[string]any{"job_id": d.JobID, "wait_s": 5, "offset": 1, "max_output": 0})
		if v.OutputBytes > 0 {
			break
		}
		if v.final() {
			t.Fatalf("detached job: %+v", v)
		}
	}
	c.kill()
	// What a process killed just before recording the launch leaves.
	raw, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := raw.Exec("UPDATE jobs SET attach = '' WHERE id = ?", d.JobID); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("cleared attach of %d rows", n)
	}
	raw.Close()

	c = start(t, env, nil)
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	v := c.waitFinal(d.JobID, 60e9)
	if got := c.output(d.JobID); v.State != "succeeded" || string(got) != string(want) {
		t.Fatalf("detached job after a restart without attach data: %s (%s), %d of %d bytes", v.State, v.Error, len(got), len(want))
	}
}

// A detached job whose launch was cut off before its command started (a
// spool folder without a pid file, no attach data: sshjobs was killed while
// the launcher ran) is launched again by the next process and completes
// byte-exact, instead of ending lost (seen in a CI run of
// TestSIGKILLDuringOutput: "the detached process did not start within 10s").
func TestReattachNeverStarted(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{})
	// With an empty spool folder (cut off before the wrapper wrote its pid
	// file), and with none (cut off before the launcher made it).
	for _, folder := range []bool{true, false} {
		t.Run(fmt.Sprintf("folder=%v", folder), func(t *testing.T) { reattachNeverStarted(t, srv, folder) })
	}
}

func reattachNeverStarted(t *testing.T, srv *sshtest.Server, folder bool) {
	db := filepath.Join(t.TempDir(), "sshjobs.db")
	env := serverEnv(srv, db)
	gate := filepath.Join(t.TempDir(), "gate")
	c := start(t, env, nil)
	want := lines("z", 1, 2000)
	d := c.job("ssh_run", map[string]any{"host": srv.Alias, "detach": true, "timeout_s": 0,
		"command": "until [ -e " + gate + " ]; do sleep 0.1; done; " + seqCmd("z", 1, 2000)})
	spool := filepath.Join(srv.Home, ".cache", "sshjobs", d.JobID)
	pidFile := filepath.Join(spool, "pid")
	var pid []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 {
			pid = b
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s", pidFile)
		}
	}
	c.kill()
	// Undo the launch as if it had been cut off before the wrapper ran: the
	// process is gone and its folder has no pid file; the row has no attach
	// data and no output.
	var p, pg int
	fmt.Sscan(string(pid), &p, &pg)
	if pg > 1 {
		syscall.Kill(-pg, syscall.SIGKILL)
	}
	syscall.Kill(p, syscall.SIGKILL)
	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	if folder {
		if err := os.Mkdir(spool, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE jobs SET attach = '', output_bytes = 0 WHERE id = ?", "DELETE FROM output_chunks WHERE job_id = ?"} {
		if _, err := raw.Exec(q, d.JobID); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	c = start(t, env, nil)
	v := c.waitFinal(d.JobID, 60e9)
	if got := c.output(d.JobID); v.State != "succeeded" || string(got) != string(want) {
		t.Fatalf("a detached job that never started, after a restart: %s (%s), %d of %d bytes", v.State, v.Error, len(got), len(want))
	}
}
