package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// numbered is what `for i in $(seq 1 n); do echo line $i; ...` prints.
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func TestMCPDetach(t *testing.T) {
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
		c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "cd /tmp && export GREETING=hi"})
		d := c.job("ssh_run", map[string]any{"host": srv.Alias, "detach": true, "timeout_s": 0.3,
			"command": `echo "$GREETING from $PWD"; for i in $(seq 1 20); do echo line $i; sleep 0.05; done; exit 3`})
		if d.State != jobs.StateRunning {
			t.Fatalf("detached job after 0.3s: %+v", d)
		}
		// The session is free while the detached job runs.
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo free", "timeout_s": 5}); v.Output != "free\n" {
			t.Fatalf("session while a detached job runs: %+v", v)
		}
		v := c.job("ssh_job", map[string]any{"job_id": d.JobID, "wait_s": 30})
		if v.State != jobs.StateFailed || !exitIs(v, 3) || v.Output != "hi from /tmp\n"+numbered(20) {
			t.Fatalf("detached job: %+v", v)
		}
	})
}

// A detached job survives the server being killed: a new server process
// re-attaches it and stores the rest of its output, byte for byte.
func TestDetachSurvivesServerKill(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := binaryEnv(t, srv)
	first := startBinary(t, bin, env)
	d := first.job("ssh_run", map[string]any{"host": srv.Alias, "detach": true, "timeout_s": 0.5,
		"command": "for i in $(seq 1 60); do echo line $i; sleep 0.05; done"})
	// Kill it mid-way: once some output is stored, well before the end.
	d = first.job("ssh_job", map[string]any{"job_id": d.JobID, "wait_s": 20, "offset": 0})
	if d.State != jobs.StateRunning || d.OutputBytes == 0 {
		t.Fatalf("before the kill: %+v", d)
	}
	first.kill()

	second := startBinary(t, bin, env)
	v := second.job("ssh_job", map[string]any{"job_id": d.JobID, "wait_s": 30, "offset": 0, "max_output": 65536})
	for !v.State.Final() {
		v = second.job("ssh_job", map[string]any{"job_id": d.JobID, "wait_s": 30, "offset": 0, "max_output": 65536})
	}
	if v.State != jobs.StateSucceeded || v.Output != numbered(60) {
		t.Fatalf("after the server was killed: %s %q\n%s", v.State, v.Error, v.Output)
	}
}

// sudo: the password comes from the environment, is typed into the
// terminal only, and is nowhere in the database.
func TestMCPSudo(t *testing.T) {
	srv := sshtest.StartOpenSSH(t, sshtest.Options{User: sshtest.TestUser})
	if srv.Password == "" {
		t.Skip("no test user with a password")
	}
	alias := strings.ToUpper(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, srv.Alias))
	t.Setenv("OVRD_"+alias+"_SUDO_PASS", srv.Password)
	dir := t.TempDir()
	c := newMCPClient(t, testConfig(t, srv, dir))
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "sudo": true, "command": "whoami"}); v.State != jobs.StateSucceeded || v.Output != "root\n" {
		t.Fatalf("sudo whoami: %+v", v)
	}
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "sudo": true, "command": "false"}); v.State != jobs.StateFailed || !exitIs(v, 1) {
		t.Fatalf("sudo false: %+v", v)
	}
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "whoami"}); v.Output != sshtest.TestUser+"\n" {
		t.Fatalf("whoami without sudo: %+v", v)
	}
	c.a.Close()
	for _, f := range []string{"sshjobs.db", "sshjobs.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte(srv.Password)) {
			t.Fatalf("the sudo password is in %s", f)
		}
	}
}

func TestMCPRunInput(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	c := newMCPClient(t, testConfig(t, srv, t.TempDir()))
	v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": `read a; read b; echo "$b $a"`, "input": `one\ntwo\n`})
	if v.State != jobs.StateSucceeded || v.Output != "two one\n" {
		t.Fatalf("input: %+v", v)
	}
}
