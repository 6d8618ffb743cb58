package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// daemonEnv is binaryEnv through the daemon, with its socket in the test's
// own runtime folder.
func daemonEnv(t testing.TB, srv *sshtest.Server) []string {
	env := binaryEnv(t, srv)
	env[len(env)-1] = "SSHJOBS_DAEMON=on"
	dir, err := os.MkdirTemp("", "rt") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return append(env, "XDG_RUNTIME_DIR="+dir)
}

// sshjobsCmd runs the built binary with env and returns its exit code and
// stdout.
func sshjobsCmd(t testing.TB, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// An MCP client that restarts its server (kills it, as clients do) loses
// nothing: the job it handed off finishes, and the session keeps its cwd and
// environment, because the daemon holds them (issue 13).
func TestDaemonSurvivesClientRestart(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })

	first := startBinary(t, bin, env)
	if v := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "cd /tmp && export SJ_KEPT=yes"}); v.State != jobs.StateSucceeded {
		t.Fatalf("setup: %+v", v)
	}
	handed := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "sleep 2; echo done", "timeout_s": 0.5})
	if handed.State != jobs.StateRunning {
		t.Fatalf("handed off: %+v", handed)
	}
	code, out := sshjobsCmd(t, bin, env, "daemon", "status", "-json")
	var st daemonStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Clients != 1 || st.ActiveJobs != 1 || st.PID <= 0 {
		t.Fatalf("daemon status: exit %d %q", code, out)
	}
	first.kill()

	second := startBinary(t, bin, env)
	if v := second.job("ssh_job", map[string]any{"job_id": handed.JobID, "wait_s": 30}); v.State != jobs.StateSucceeded || v.Output != "done\n" {
		t.Fatalf("the handed-off job after the client restarted: %+v", v)
	}
	if v := second.job("ssh_run", map[string]any{"host": srv.Alias, "command": `echo "$PWD $SJ_KEPT"`}); v.Output != "/tmp yes\n" || v.NewShell {
		t.Fatalf("the session after the client restarted: %+v", v)
	}
	if code, out := sshjobsCmd(t, bin, env, "daemon", "stop", "-wait"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("daemon stop: exit %d %q", code, out)
	}
	if code, _ := sshjobsCmd(t, bin, env, "daemon", "status"); code != 3 {
		t.Fatalf("daemon status after stop: exit %d, want 3", code)
	}
}

// `sshjobs run` goes through the daemon: a second run reuses the warm
// connection and shell (the cwd and environment the first one left), and
// exit codes and errors are the command's own.
func TestDaemonCLIRunReusesShell(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })

	if code, out := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", "cd /tmp && export SJ_KEPT=yes && echo first"); code != 0 || out != "first\n" {
		t.Fatalf("first run: exit %d %q", code, out)
	}
	if code, out := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", `echo "$PWD $SJ_KEPT"; (exit 7)`); code != 7 || out != "/tmp yes\n" {
		t.Fatalf("second run: exit %d %q; want 7 and the first run's cwd and environment", code, out)
	}
	code, out := sshjobsCmd(t, bin, env, "daemon", "status", "-json")
	var st daemonStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Connections != 1 {
		t.Fatalf("daemon status: exit %d %q; want one connection", code, out)
	}
	if code, _ := sshjobsCmd(t, bin, env, "run", "bad host", "--", "true"); code != 1 {
		t.Fatalf("a host that cannot resolve: exit %d, want 1", code)
	}
}

// Two clients at once share the daemon and its one connection; a stale
// socket left by a killed daemon does not stop a new one; an unused daemon
// exits after its linger.
func TestDaemonSharedStaleAndLinger(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })

	a, b := startBinary(t, bin, env), startBinary(t, bin, env)
	for i, c := range []*stdioServer{a, b} {
		if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo hi", "session": fmt.Sprint("s", i)}); v.Output != "hi\n" {
			t.Fatalf("client %d: %+v", i, v)
		}
	}
	code, out := sshjobsCmd(t, bin, env, "daemon", "status", "-json")
	var st daemonStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Clients != 2 || st.Connections != 1 {
		t.Fatalf("two clients: status exit %d %q; want 2 clients on 1 connection", code, out)
	}

	// SIGKILL the daemon: its socket file stays behind.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.Socket); err != nil {
		t.Fatalf("the killed daemon's socket: %v", err)
	}
	c := startBinary(t, bin, env)
	if v := c.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo again"}); v.Output != "again\n" {
		t.Fatalf("after a stale socket: %+v", v)
	}
	c.cs.Close()

	// A daemon run by hand with a short linger exits on its own once unused.
	sshjobsCmd(t, bin, env, "daemon", "stop", "-wait")
	linger := exec.Command(bin, "daemon", "run", "-linger", "300ms")
	linger.Env = append(os.Environ(), env...)
	if err := linger.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- linger.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("lingering daemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		linger.Process.Kill()
		t.Fatal("an unused daemon did not exit after its linger")
	}
}

// `sshjobs cancel -grace 0` stops at once a job that ignores INT, also when
// another process (here the daemon) runs it: the cancel goes through the
// daemon with its signal and grace (issue 10).
func TestDaemonCancelGraceZero(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })

	runner := exec.Command(bin, "run", srv.Alias, "--", "trap '' INT; echo started; sleep 600")
	runner.Env = append(os.Environ(), env...)
	out, err := runner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("the job did not start: %q %v", line, err)
	}
	code, list := sshjobsCmd(t, bin, env, "jobs", "-json", "-state", "running")
	var jl jobsOut
	if code != 0 || json.Unmarshal([]byte(list), &jl) != nil || len(jl.Jobs) != 1 {
		t.Fatalf("jobs: %d %q", code, list)
	}
	start := time.Now()
	code, res := sshjobsCmd(t, bin, env, "cancel", "-grace", "0", jl.Jobs[0].JobID)
	if code != 0 || !strings.Contains(res, "cancelled signal=KILL") {
		t.Fatalf("cancel -grace 0: exit %d %q", code, res)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("cancel -grace 0 took %s: it waited for a grace", took.Round(time.Millisecond))
	}
	if err := runner.Wait(); err == nil || err.(*exec.ExitError).ExitCode() != 137 {
		t.Errorf("the runner of the killed job: %v, want exit 137", err)
	}
}

// The daemon a front starts gets the front's master password (on its stdin,
// not in its environment): saving a secret through the daemon works, and the
// password is in neither the daemon's command line nor its environment
// (review finding: the front removed it from its environment first, so the
// daemon's credential store was always off).
func TestDaemonGetsMasterPassword(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{User: sshtest.TestUser})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	const master = "daemon-master-pw-7"
	env = append(env, "SSHJOBS_SSH_CONFIG="+passwordOnlyConfig(t, srv), "SSHJOBS_MASTER_PASSWORD="+master)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })

	front := startBinary(t, bin, env)
	res := front.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true})
	var out connectOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &out) != nil || strings.Join(out.Saved, ",") != "password" {
		t.Fatalf("ssh_connect save through the daemon: %q", text(res))
	}
	code, status := sshjobsCmd(t, bin, env, "daemon", "status", "-json")
	var st daemonStatus
	if code != 0 || json.Unmarshal([]byte(status), &st) != nil {
		t.Fatalf("daemon status: %d %q", code, status)
	}
	for _, f := range []string{"environ", "cmdline"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", st.PID, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), master) {
			t.Errorf("the daemon's %s holds the master password", f)
		}
	}
}

// A front that comes while the daemon still holds its lock (shutting down,
// or just starting) waits for it instead of failing: the daemon it starts
// takes over once the lock is free (review finding).
func TestDaemonStartWaitsForTheLock(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })
	if code, _ := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", "true"); code != 0 {
		t.Fatal("first run failed")
	}
	var rt string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_RUNTIME_DIR="); ok {
			rt = v
		}
	}
	sshjobsCmd(t, bin, env, "daemon", "stop", "-wait")
	locks, _ := filepath.Glob(filepath.Join(rt, "sshjobs", "*.lock"))
	if len(locks) != 1 {
		t.Fatalf("lock files %v", locks)
	}
	// Stand in for a daemon that is still shutting down.
	f, err := os.OpenFile(locks[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan struct{})
	time.AfterFunc(time.Second, func() { syscall.Flock(fd, syscall.LOCK_UN); close(unlocked) })
	code, out := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", "echo after")
	<-unlocked // before f closes
	if code != 0 || out != "after\n" {
		t.Fatalf("run while the lock was held: exit %d %q", code, out)
	}
}
