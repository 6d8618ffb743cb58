package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// `sshjobs run` through the daemon gets its job's output and end on the
// connection it submitted on (daemon_run.go): these run the built binary.

// The output is the job's as stored, byte for byte: tabs and control bytes,
// no newline at the end, and more than one read (frame) of output.
func TestDaemonRunOutputExact(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)
	const big = 3<<20 + 5 // past three of copyOutput's 1 MiB reads
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"tab-and-no-newline", []string{"printf 'a\tb\n'; printf 'no newline'; (exit 3)"}, "a\tb\nno newline", 3},
		// Detached: no terminal between the command and the output.
		{"control-bytes", []string{"-detach", "printf 'a\\001\\377b\\n'; printf 'no newline'; exit 4"}, "a\x01\xffb\nno newline", 4},
		{"big", []string{"yes 0123456789abcdef | head -c " + strconv.Itoa(big)}, strings.Repeat("0123456789abcdef\n", big/17+1)[:big], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run"}, tc.args[:len(tc.args)-1]...)
			args = append(args, srv.Alias, "--", tc.args[len(tc.args)-1])
			code, out, errOut := sshjobsCmdIn(t, bin, env, "", args...)
			if code != tc.code || out != tc.want {
				t.Fatalf("run: exit %d, %d bytes of stdout (want %d), stderr %q\nstart %q", code, len(out), len(tc.want), errOut, out[:min(len(out), 64)])
			}
			if errOut != "" && !strings.HasPrefix(errOut, "sshjobs: detached job ") {
				t.Errorf("stderr: %q", errOut)
			}
			// The same as the stored output, which logs prints.
			id := lastJob(t, bin, env).JobID
			if _, logs, _ := sshjobsCmdIn(t, bin, env, "", "logs", id); logs != out {
				t.Errorf("logs %s: %d bytes, run printed %d", id, len(logs), len(out))
			}
		})
	}
}

// lastJob is the newest job of the database.
func lastJob(t *testing.T, bin string, env []string) jobRow {
	t.Helper()
	code, out := sshjobsCmd(t, bin, env, "jobs", "-json", "-limit", "1")
	var list jobsOut
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Jobs) != 1 {
		t.Fatalf("jobs: exit %d %q", code, out)
	}
	return list.Jobs[0]
}

// runner is `sshjobs run` started in the background, its stdout read line
// by line.
type runner struct {
	cmd    *exec.Cmd
	stdout sshtest.Buffer
	stderr sshtest.Buffer
	done   chan error
}

func startRunner(t *testing.T, bin string, env []string, args ...string) *runner {
	t.Helper()
	r := &runner{cmd: exec.Command(bin, append([]string{"run"}, args...)...), done: make(chan error, 1)}
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	go func() { r.done <- r.cmd.Wait() }()
	return r
}

// line waits for the next line of output.
func (r *runner) line(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s := r.stdout.String(); strings.Contains(s, "\n") {
			return s
		}
	}
	t.Fatalf("no line of output; stderr %q", r.stderr.String())
	return ""
}

// wait waits (within limit) for the runner to exit and returns its code.
func (r *runner) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		t.Fatalf("sshjobs run did not exit within %s; stdout %q, stderr %q", limit, r.stdout.String(), r.stderr.String())
	}
	return -1
}

// The first Ctrl-C cancels the job through the daemon (INT): the output up
// to the end is shown and the exit code is the interrupted command's.
// Detached, Ctrl-C only stops following: the job goes on.
func TestDaemonRunCtrlC(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)

	r := startRunner(t, bin, env, srv.Alias, "--", "echo started; sleep 600; echo never")
	if line := r.line(t); line != "started\n" {
		t.Fatalf("first line %q", line)
	}
	r.cmd.Process.Signal(syscall.SIGINT)
	if code := r.wait(t, 30*time.Second); code != 130 || !strings.HasPrefix(r.stdout.String(), "started\n") {
		t.Fatalf("after Ctrl-C: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
	}
	j := lastJob(t, bin, env)
	if j.State != jobs.StateCancelled {
		t.Fatalf("the job after Ctrl-C: %+v", j)
	}
	// To its end: what the shell printed after the INT too.
	if _, logs, _ := sshjobsCmdIn(t, bin, env, "", "logs", j.JobID); logs != r.stdout.String() {
		t.Errorf("after Ctrl-C, run printed %q; the job's output is %q", r.stdout.String(), logs)
	}

	d := startRunner(t, bin, env, "-detach", srv.Alias, "--", "echo started; sleep 600")
	if line := d.line(t); line != "started\n" {
		t.Fatalf("detached: first line %q", line)
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	id := lastJob(t, bin, env).JobID
	if code := d.wait(t, 30*time.Second); code != 0 || !strings.Contains(d.stderr.String(), "stopped following; job "+id+" goes on") {
		t.Fatalf("detached, after Ctrl-C: exit %d, stderr %q", code, d.stderr.String())
	}
	if j := lastJob(t, bin, env); j.JobID != id || j.State != jobs.StateRunning {
		t.Fatalf("the detached job after Ctrl-C: %+v; want it running", j)
	}
	if code, out := sshjobsCmd(t, bin, env, "cancel", "-grace", "0", id); code != 0 {
		t.Fatalf("cancel: exit %d %q", code, out)
	}
}

// A daemon killed while `sshjobs run` follows its job: the run does not
// hang. A shell job is gone with the daemon: the run says so, naming the
// job, once the daemon's lease has lapsed. A detached job goes on: the run
// follows it in the database, and once a new daemon re-attaches it, its
// output arrives byte-exact, with nothing shown twice or left out.
func TestDaemonRunDaemonKilled(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin, env := daemonSetup(t, srv)
	killDaemon := func() {
		t.Helper()
		sts := daemons(t, bin, env)
		if len(sts) != 1 {
			t.Fatalf("daemons: %+v", sts)
		}
		if err := syscall.Kill(sts[0].PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}

	r := startRunner(t, bin, env, srv.Alias, "--", "echo started; sleep 600")
	if line := r.line(t); line != "started\n" {
		t.Fatalf("first line %q", line)
	}
	id := lastJob(t, bin, env).JobID
	killDaemon()
	// The lease is 1 s (daemonEnv): the orphan is found within seconds.
	if code := r.wait(t, 30*time.Second); code != 1 || r.stdout.String() != "started\n" ||
		!strings.Contains(r.stderr.String(), "job "+id) || !strings.Contains(r.stderr.String(), "stopped at") {
		t.Fatalf("the shell job's run after the daemon was killed: exit %d, stdout %q, stderr %q", code, r.stdout.String(), r.stderr.String())
	}

	d := startRunner(t, bin, env, "-detach", "-session", "bg", srv.Alias, "--",
		`for i in 1 2 3 4 5 6; do printf 'line %d\t\n' $i; sleep 0.5; done; printf 'no newline, \001 bytes'; exit 5`)
	if line := d.line(t); line != "line 1\t\n" {
		t.Fatalf("detached: first line %q", line)
	}
	killDaemon()
	// A new daemon (any front starts one) adopts and re-attaches the job.
	if code, out := sshjobsCmd(t, bin, env, "run", srv.Alias, "--", "echo next"); code != 0 || out != "next\n" {
		t.Fatalf("a run on the new daemon: exit %d %q", code, out)
	}
	want := "line 1\t\nline 2\t\nline 3\t\nline 4\t\nline 5\t\nline 6\t\nno newline, \x01 bytes"
	if code := d.wait(t, 60*time.Second); code != 5 || d.stdout.String() != want {
		t.Fatalf("the detached job's run across the daemon's death: exit %d, stdout %q (want %q), stderr %q", code, d.stdout.String(), want, d.stderr.String())
	}
}
