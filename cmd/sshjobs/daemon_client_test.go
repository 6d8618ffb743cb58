package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// The daemon's clients bring their own environment and settings (issue 13):
// these tests run the built binary against real servers.

// with is env and more variables.
func with(env []string, more ...string) []string {
	return append(slices.Clone(env), more...)
}

// daemonSetup is the built binary and daemonEnv for srv; the daemons the
// test starts are stopped at its end.
func daemonSetup(t *testing.T, srv *sshtest.Server) (bin string, env []string) {
	bin, env = buildBinary(t), daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, bin, env, "daemon", "stop", "-wait") })
	return bin, env
}

// sshjobsCmdIn is sshjobsCmd in dir, also returning stderr.
func sshjobsCmdIn(t testing.TB, bin string, env []string, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out), errb.String()
}

// daemons is `daemon status -json`: every daemon of the database.
func daemons(t testing.TB, bin string, env []string) []daemonStatus {
	t.Helper()
	code, out := sshjobsCmd(t, bin, env, "daemon", "status", "-json")
	if code == 3 {
		return nil
	}
	var sts []daemonStatus
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var st daemonStatus
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("daemon status: exit %d %q: %v", code, out, err)
		}
		sts = append(sts, st)
	}
	return sts
}

// sshPort is the server port a command ran against: the 4th field of
// $SSH_CONNECTION.
func sshPort(t testing.TB, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) != 4 {
		t.Fatalf("SSH_CONNECTION = %q", out)
	}
	return f[3]
}

// Two fronts with different environments, connected at once to ONE daemon:
// the same alias sent to another server by one front's OVRD_ variables, and
// an alias only one front's -ssh-config knows. Each job runs where its own
// front's settings lead; a daemon that used the first front's (or the
// last's) environment for all would land on the wrong port.
func TestDaemonPerClientEnvironment(t *testing.T) {
	a := sshtest.Start(t, sshtest.Options{})
	b := sshtest.StartInProcess(t, sshtest.Options{})
	sshtest.AppendKnownHosts(t, a.KnownHosts, b) // the OVRD_ destination is trusted too
	bin, env := daemonSetup(t, a)
	other := with(env, "OVRD_"+a.Alias+"_PORT="+strconv.Itoa(b.Port),
		"OVRD_"+a.Alias+"_HOST=127.0.0.1", "OVRD_"+a.Alias+"_KEY="+b.KeyFile)
	portOf := func(c *stdioServer) string {
		v := c.job("ssh_run", map[string]any{"host": a.Alias, "command": "echo $SSH_CONNECTION"})
		return sshPort(t, v.Output)
	}
	aPort, bPort := strconv.Itoa(a.Port), strconv.Itoa(b.Port)

	first := startBinary(t, bin, env) // starts the daemon
	second := startBinary(t, bin, other)
	if got := portOf(second); got != bPort {
		t.Fatalf("the front with OVRD_%s_PORT=%s: ran on port %s", a.Alias, bPort, got)
	}
	if got := portOf(first); got != aPort {
		t.Fatalf("the front without OVRD_: ran on port %s, want %s", got, aPort)
	}
	if got := portOf(second); got != bPort {
		t.Fatalf("the front with OVRD_ again: ran on port %s, want %s", got, bPort)
	}
	// The CLI is a client too.
	if _, out := sshjobsCmd(t, bin, other, "run", a.Alias, "--", "echo $SSH_CONNECTION"); sshPort(t, out) != bPort {
		t.Fatalf("sshjobs run with OVRD_: %q, want port %s", out, bPort)
	}
	// An alias that only this front's ssh_config knows.
	code, out, errOut := sshjobsCmdIn(t, bin, with(env, "SSHJOBS_SSH_CONFIG="+b.SSHConfig), "", "run", b.Alias, "--", "echo $SSH_CONNECTION")
	if code != 0 || sshPort(t, out) != bPort {
		t.Fatalf("sshjobs run -ssh-config %s %s: exit %d %q %s", b.SSHConfig, b.Alias, code, out, errOut)
	}
	sts := daemons(t, bin, env)
	// Three routes, three connections: a; b with the OVRD_ key; b with the
	// ssh_config's key and known_hosts.
	if len(sts) != 1 || sts[0].Clients != 2 || sts[0].Connections != 3 {
		t.Fatalf("daemons: %+v; want one, with the two fronts and three connections", sts)
	}
}

// Two fronts with the same settings, from different working directories and
// terminals (another SSH_AUTH_SOCK, as every new terminal has), share the
// daemon, its connection and the shell's state: the route depends on neither.
func TestDaemonSharedAcrossTerminals(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)
	dir1, dir2 := t.TempDir(), t.TempDir()

	code, out, errOut := sshjobsCmdIn(t, bin, with(env, "SSH_AUTH_SOCK="+filepath.Join(dir1, "agent")), dir1,
		"run", srv.Alias, "--", "cd /tmp && export SJ_KEPT=yes && echo first")
	if code != 0 || out != "first\n" || errOut != "" {
		t.Fatalf("first terminal: exit %d %q %q", code, out, errOut)
	}
	front := startBinaryIn(t, bin, with(env, "SSH_AUTH_SOCK="+filepath.Join(dir2, "agent")), dir2)
	if v := front.job("ssh_run", map[string]any{"host": srv.Alias, "command": `echo "$PWD $SJ_KEPT"`}); v.Output != "/tmp yes\n" || v.NewShell {
		t.Fatalf("second terminal: %+v; want the first one's shell", v)
	}
	if sts := daemons(t, bin, env); len(sts) != 1 || sts[0].Connections != 1 {
		t.Fatalf("daemons: %+v; want one with one connection", sts)
	}
	// A database setting the daemon does not share is said, not ignored.
	code, out, errOut = sshjobsCmdIn(t, bin, with(env, "SSHJOBS_LEASE=5s"), dir2, "run", srv.Alias, "--", "echo $SJ_KEPT")
	if code != 0 || out != "yes\n" || !strings.Contains(errOut, "sshjobs: warning: ") || !strings.Contains(errOut, "-lease 5s (the daemon's: 1s)") {
		t.Fatalf("a front with another -lease: exit %d %q, stderr %q; want it run, with a warning", code, out, errOut)
	}
}

// A client's secrets (OVRD_*_PASS, the master password) reach the daemon in
// its hello and stay in its memory: they work, only for that client's jobs,
// and are in neither the daemon's environment, its command line nor its log
// (at debug level).
func TestDaemonKeepsSecretsInMemory(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{User: sshtest.TestUser})
	const master = "daemon-master-pw-7"
	bin, env := daemonSetup(t, srv)
	env = with(env, "SSHJOBS_SSH_CONFIG="+passwordOnlyConfig(t, srv), "SSHJOBS_LOG_LEVEL=debug")

	// The front that starts the daemon logs in with its OVRD_ password.
	withPass := startBinary(t, bin, with(env, "OVRD_pw_PASS="+srv.Password, "SSHJOBS_MASTER_PASSWORD="+master))
	if v := withPass.job("ssh_run", map[string]any{"host": "pw", "command": "echo in"}); v.Output != "in\n" {
		t.Fatalf("with OVRD_pw_PASS: %+v", v)
	}
	withPass.call("ssh_close", map[string]any{"all": true})
	// Another front has neither: its job dials anew, and gets no password.
	bare := startBinary(t, bin, env)
	if v := bare.job("ssh_run", map[string]any{"host": "pw", "command": "echo in"}); v.State != jobs.StateError || v.ErrorKind != "auth" {
		t.Fatalf("a front without the password: %+v; want an auth error (another front's password is not its)", v)
	}
	// A third saves a password with its master password, over the socket.
	saver := startBinary(t, bin, with(env, "SSHJOBS_MASTER_PASSWORD="+master))
	res := saver.call("ssh_connect", map[string]any{"host": "pw", "password": srv.Password, "save": true})
	var co connectOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &co) != nil || strings.Join(co.Saved, ",") != "password" {
		t.Fatalf("ssh_connect save through the daemon: %q", text(res))
	}

	sts := daemons(t, bin, env)
	if len(sts) != 1 {
		t.Fatalf("daemons: %+v", sts)
	}
	for _, f := range []string{fmt.Sprintf("/proc/%d/environ", sts[0].PID), fmt.Sprintf("/proc/%d/cmdline", sts[0].PID), sts[0].DB + ".daemon.log"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{master, srv.Password} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a client's secret", f)
			}
		}
	}
}

// The daemon's socket is 0600 in a 0700 folder, and a connection from
// another uid is refused (SO_PEERCRED) even where the folder and the socket
// would let it through; a front of another user refuses the folder.
func TestDaemonRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run a client as another uid")
	}
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)
	if code, _ := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", "true"); code != 0 {
		t.Fatal("run failed")
	}
	sts := daemons(t, bin, env)
	if len(sts) != 1 {
		t.Fatalf("daemons: %+v", sts)
	}
	sock := sts[0].Socket
	for path, want := range map[string]os.FileMode{filepath.Dir(sock): 0o700, sock: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %o", path, fi.Mode(), err, want)
		}
	}
	// Open the way, as a mistake would, for uid 65534 (nobody); closed again
	// before the daemon is stopped.
	pub, err := os.MkdirTemp("", "pub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub); os.Chmod(filepath.Dir(sock), 0o700) })
	for _, p := range []string{filepath.Dir(filepath.Dir(sock)), filepath.Dir(sock), pub} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{self, bin} {
		copyFile(t, f, filepath.Join(pub, filepath.Base(f)), 0o755)
	}
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}

	dial := exec.Command(filepath.Join(pub, filepath.Base(self)))
	dial.Env = append(os.Environ(), envTestDial+"="+sock)
	dial.SysProcAttr = nobody
	out, err := dial.CombinedOutput()
	if err != nil || string(out) != "connected; answer: \"\"\n" {
		t.Fatalf("a client of uid 65534: %v %q; want connected and no answer", err, out)
	}
	log, err := os.ReadFile(sts[0].DB + ".daemon.log")
	if err != nil || !strings.Contains(string(log), "peer uid 65534") {
		t.Errorf("the daemon's log does not say it refused uid 65534:\n%s", log)
	}
	// sshjobs itself, as that user, does not use a folder that is not its own.
	status := exec.Command(filepath.Join(pub, "sshjobs"), "daemon", "status")
	status.Env = append(os.Environ(), env...)
	status.SysProcAttr = nobody
	out, err = status.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must be a folder of this user with mode 0700") {
		t.Fatalf("daemon status as uid 65534: %v %q", err, out)
	}
}

// envTestDial makes the test binary a client that connects to a daemon's
// socket, asks for its status and prints what came back (TestMain).
const envTestDial = "SSHJOBS_TEST_DIAL"

// testDial is the client of envTestDial.
func testDial(sock string) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(1)
	}
	io.WriteString(c, daemonHelloStatus+"\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	fmt.Printf("connected; answer: %q\n", b)
	os.Exit(0)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// A front of a newer build starts its own daemon, and the older build's
// daemon drains: it takes no new client (a front of its build starts
// another daemon), finishes its running job, and exits then, without
// lingering. The older build's new daemon does not drain the newer one.
func TestDaemonOlderBuildDrains(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	oldBin := buildBinary(t)
	newBin := filepath.Join(t.TempDir(), "sshjobs")
	copyFile(t, oldBin, newBin, 0o755) // another build: another path and a later time
	env := daemonEnv(t, srv)
	t.Cleanup(func() { sshjobsCmd(t, newBin, env, "daemon", "stop", "-wait") })
	release := filepath.Join(t.TempDir(), "release")

	old := startBinary(t, oldBin, env)
	running := old.job("ssh_run", map[string]any{"host": srv.Alias, "timeout_s": 0.5,
		"command": fmt.Sprintf("while [ ! -e %s ]; do sleep 0.1; done; echo old-done", release)})
	if running.State != jobs.StateRunning {
		t.Fatalf("the old daemon's job: %+v", running)
	}
	old.cs.Close()
	sts := daemons(t, oldBin, env)
	if len(sts) != 1 {
		t.Fatalf("daemons: %+v", sts)
	}
	oldPID := sts[0].PID

	if code, out := sshjobsCmd(t, newBin, env, "run", srv.Alias, "--", "echo new"); code != 0 || out != "new\n" {
		t.Fatalf("the newer build's run: exit %d %q", code, out)
	}
	var newPID int
	waitFor(t, "the old daemon to drain", func() bool {
		newPID = 0
		draining := false
		for _, st := range daemons(t, newBin, env) {
			switch {
			case st.PID == oldPID:
				draining = st.Draining && st.ActiveJobs == 1
			case !st.Draining:
				newPID = st.PID
			}
		}
		return draining && newPID != 0
	})
	// A front of the old build now gets a daemon of its own.
	if code, out := sshjobsCmd(t, oldBin, env, "run", srv.Alias, "--", "echo old-again"); code != 0 || out != "old-again\n" {
		t.Fatalf("the older build's run while its daemon drains: exit %d %q", code, out)
	}
	pids := map[int]bool{}
	for _, st := range daemons(t, newBin, env) {
		pids[st.PID] = true
		if st.PID == newPID && st.Draining {
			t.Fatalf("the older build's new daemon drained the newer one: %+v", st)
		}
		if st.PID == oldPID && st.Clients != 0 {
			t.Fatalf("the draining daemon took a client: %+v", st)
		}
	}
	if len(pids) != 3 {
		t.Fatalf("daemons %v; want the draining one, the newer build's and the older build's new one", pids)
	}

	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drained daemon to exit", func() bool { return syscall.Kill(oldPID, 0) != nil })
	front := startBinary(t, newBin, env)
	if v := front.job("ssh_job", map[string]any{"job_id": running.JobID}); v.State != jobs.StateSucceeded || v.Output != "old-done\n" {
		t.Fatalf("the drained daemon's job: %+v", v)
	}
}

// The daemon is SIGKILLed with a shell job and a detached job running and a
// call waiting: the call returns an error within its wait and a second, the
// next front reaches a new daemon, which ends the shell job lost and
// re-attaches the detached one, whose output arrives byte-exact.
func TestDaemonKilled(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)

	first := startBinary(t, bin, env)
	shell := first.job("ssh_run", map[string]any{"host": srv.Alias, "command": "echo started; sleep 600", "timeout_s": 0.5})
	detached := first.job("ssh_run", map[string]any{"host": srv.Alias, "detach": true, "timeout_s": 0.5, "session": "bg",
		"command": `for i in 1 2 3 4 5 6; do printf 'line %d\t\n' $i; sleep 0.5; done; printf 'no newline, \x01 bytes'`})
	if shell.State != jobs.StateRunning || detached.State != jobs.StateRunning {
		t.Fatalf("before the kill: %s %s", shell.State, detached.State)
	}
	// Launched (its first line came back): there is something to re-attach.
	waitFor(t, "the detached job's first line", func() bool {
		return first.job("ssh_job", map[string]any{"job_id": detached.JobID, "wait_s": 0}).OutputBytes > 0
	})
	sts := daemons(t, bin, env)
	if len(sts) != 1 {
		t.Fatalf("daemons: %+v", sts)
	}
	const wait = 5.0
	called := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		res, err := first.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ssh_job", Arguments: map[string]any{"job_id": shell.JobID, "wait_s": wait}})
		if err == nil && !res.IsError {
			t.Errorf("a call in flight when the daemon died answered: %s", text(res))
		}
		called <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond) // let the call reach the daemon (it must return either way)
	if err := syscall.Kill(sts[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case took := <-called:
		if took > time.Duration(wait+1)*time.Second {
			t.Errorf("the call in flight took %s, more than its wait and a second", took)
		}
	case <-time.After(time.Duration(wait+1) * time.Second):
		t.Fatal("the call in flight blocked longer than its wait and a second")
	}

	second := startBinary(t, bin, env)
	timed := func(id string, waitS float64) *jobView {
		start := time.Now()
		v := second.job("ssh_job", map[string]any{"job_id": id, "wait_s": waitS})
		if took := time.Since(start); took > time.Duration(waitS+1)*time.Second {
			t.Errorf("ssh_job wait_s=%g took %s", waitS, took)
		}
		return v
	}
	v := timed(shell.JobID, 2)
	for !v.State.Final() {
		v = timed(shell.JobID, 2)
	}
	if v.State != jobs.StateLost || v.Output != "started\n" {
		t.Fatalf("the shell job after the daemon died: %+v", v)
	}
	v = timed(detached.JobID, 20)
	want := "line 1\t\nline 2\t\nline 3\t\nline 4\t\nline 5\t\nline 6\t\nno newline, \x01 bytes"
	if v.State != jobs.StateSucceeded || v.Output != want || !exitIs(v, 0) {
		t.Fatalf("the detached job after the daemon died: %+v\nwant output %q", v, want)
	}
	if sts2 := daemons(t, bin, env); len(sts2) != 1 || sts2[0].PID == sts[0].PID {
		t.Fatalf("daemons after the kill: %+v; want a new one", sts2)
	}
}

// URL elicitation works through the front and the daemon: the client's
// capability reaches the daemon's server session, the page is served by the
// daemon, the retried call comes back through the front, and "remember"
// stores with the front's master password.
func TestDaemonURLElicitation(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)
	env = with(env, "SSHJOBS_SSH_CONFIG="+passwordOnlyConfig(t, srv), "SSHJOBS_MASTER_PASSWORD=daemon-elicit-m")
	var asked []string
	client, _ := elicitingClient(true, answerPage(t, srv.Password, true, &asked))
	c := startBinaryClient(t, bin, env, client, &sshtest.Buffer{})
	if v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo ran"}); v.Output != "ran\n" || len(asked) != 1 {
		t.Fatalf("ssh_run through the daemon: %+v, asked %q", v, asked)
	}
	if k := storedKinds(c.mcpClient); k != "password" {
		t.Errorf("stored %q, want password (remember ticked)", k)
	}
	if sts := daemons(t, bin, env); len(sts) != 1 {
		t.Errorf("daemons: %+v; want the call served by one", sts)
	}
}
