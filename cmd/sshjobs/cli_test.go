package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// cli runs the CLI in this process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLIRunExitCodes(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	db := filepath.Join(t.TempDir(), "sshjobs.db")
	flags := []string{"-db", db, "-ssh-config", srv.SSHConfig}

	code, out, errOut := cli(t, append(append([]string{"run"}, flags...), srv.Alias, "--", "echo", "hi;", "(exit 4)")...)
	if code != 4 || out != "hi\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = cli(t, append(append([]string{"run"}, flags...), srv.Alias, "printf 'a\\nb'")...)
	if code != 0 || out != "a\nb" {
		t.Fatalf("run printf: exit %d, %q", code, out)
	}
	if code, _, errOut := cli(t, append(append([]string{"run"}, flags...), "nobody@127.0.0.1:1", "true")...); code != 255 || !strings.Contains(errOut, "error") {
		t.Fatalf("unreachable host: exit %d, %q", code, errOut)
	}
	code, out, _ = cli(t, append([]string{"jobs", "-json"}, flags...)...)
	var list jobsOut
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Jobs) != 3 || list.Jobs[2].Command != "echo hi; (exit 4)" {
		t.Fatalf("jobs -json: exit %d, %s", code, out)
	}
	code, out, _ = cli(t, append(append([]string{"logs"}, flags...), list.Jobs[2].JobID)...)
	if code != 0 || out != "hi\n" {
		t.Fatalf("logs: exit %d, %q", code, out)
	}
}

func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"bogus"}, exitUsage},
		{[]string{"run"}, exitUsage},
		{[]string{"run", "-max-job-output", "12"}, exitUsage},
		{[]string{"logs"}, exitUsage},
		{[]string{"run", "-h"}, 0},
		{[]string{"help"}, 0},
		{[]string{"version"}, 0},
	} {
		if code, _, _ := cli(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
	if _, _, errOut := cli(t, "logs", "-db", filepath.Join(t.TempDir(), "x.db"), "01a1fd6c-0000-7000-8000-000000000000"); !strings.Contains(errOut, "no such job") {
		t.Errorf("logs of an unknown job: %q", errOut)
	}
}

// A job run by one sshjobs process is followed and cancelled from another.
func TestCLIFollowAndCancelAcrossProcesses(t *testing.T) {
	srv := sshtest.Start(t, sshtest.Options{})
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "sshjobs.db")
	flags := []string{"-db", db, "-ssh-config", srv.SSHConfig}
	jobID := func() string {
		var id string
		waitFor(t, "the job to be stored", func() bool {
			_, out, _ := cli(t, append([]string{"jobs", "-json", "-state", "running"}, flags...)...)
			var list jobsOut
			if json.Unmarshal([]byte(out), &list) == nil && len(list.Jobs) == 1 {
				id = list.Jobs[0].JobID
			}
			return id != ""
		})
		return id
	}

	runner := exec.Command(bin, append(append([]string{"run"}, flags...), srv.Alias, "for i in 1 2 3; do echo line $i; sleep 0.3; done")...)
	runner.Stderr = os.Stderr
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, append(append([]string{"logs", "-f"}, flags...), jobID())...)
	if code != 0 || out != "line 1\nline 2\nline 3\n" || !strings.Contains(errOut, "succeeded exit=0") {
		t.Fatalf("logs -f: exit %d, %q, %q", code, out, errOut)
	}
	if err := runner.Wait(); err != nil {
		t.Fatalf("runner: %v", err)
	}

	runner = exec.Command(bin, append(append([]string{"run"}, flags...), srv.Alias, "echo started; sleep 60")...)
	var runnerOut bytes.Buffer
	runner.Stdout = &runnerOut
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, append(append([]string{"cancel", "-grace", "1s"}, flags...), jobID())...)
	if code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d, %q, %q", code, out, errOut)
	}
	err := runner.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.HasPrefix(runnerOut.String(), "started\n") {
		t.Fatalf("the runner of a cancelled job: %v, output %q", err, runnerOut.String())
	}
}

// Following a job whose process died says so: a job that ran in that
// process's shell is gone with it, so following ends.
func TestCLIFollowOrphan(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	bin := buildBinary(t)
	db := filepath.Join(t.TempDir(), "sshjobs.db")
	flags := []string{"-db", db, "-ssh-config", srv.SSHConfig}
	runner := exec.Command(bin, append(append([]string{"run", "-lease", "1s"}, flags...), srv.Alias, "echo started; sleep 60")...)
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	waitFor(t, "the job's first line to be stored", func() bool {
		_, out, _ := cli(t, append([]string{"jobs", "-json", "-state", "running"}, flags...)...)
		var list jobsOut
		if json.Unmarshal([]byte(out), &list) == nil && len(list.Jobs) == 1 && list.Jobs[0].OutputBytes > 0 {
			id = list.Jobs[0].JobID
		}
		return id != ""
	})
	runner.Process.Kill()
	runner.Wait()

	code, out, errOut := cli(t, append(append([]string{"logs", "-f"}, flags...), id)...)
	if code != 1 || out != "started\n" || !strings.Contains(errOut, "stopped at") || !strings.Contains(errOut, "marked lost") {
		t.Fatalf("logs -f of a job whose process died: exit %d, %q, %q", code, out, errOut)
	}
	t.Logf("logs -f: %s", errOut)
}

// A spool folder of a job the database does not know is listed, not deleted.
func TestCLISpools(t *testing.T) {
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	spool := t.TempDir()
	orphan := filepath.Join(spool, "01a1fd6c-0000-7000-8000-000000000000")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(orphan, "out"), []byte("the only copy\n"), 0o600)
	flags := []string{"-db", filepath.Join(t.TempDir(), "sshjobs.db"), "-ssh-config", srv.SSHConfig, "-spool-dir", spool}
	code, out, errOut := cli(t, append(append([]string{"spools"}, flags...), srv.Alias)...)
	if code != 0 || strings.TrimSpace(out) != orphan || !strings.Contains(errOut, "1 spool folder") {
		t.Fatalf("spools: exit %d, %q, %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(orphan, "out")); err != nil {
		t.Fatalf("the orphan spool was touched: %v", err)
	}
}
