package jobs_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// The child process of TestKilledProcessJobsAreAdopted: it starts a job that
// runs forever and queues another behind it in the same session, prints their
// ids once the first one's output is stored, and waits to be killed.
func init() {
	if os.Getenv("SSHJOBS_TEST_CHILD") != "recover" {
		return
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, os.Getenv("SSHJOBS_TEST_DB"), sqlstore.Options{})
	if err != nil {
		panic(err)
	}
	eng, err := jobs.New(jobs.Config{Store: db, Executor: &jobstest.LocalExecutor{Dir: os.Getenv("SSHJOBS_TEST_DIR")}, Lease: 500 * time.Millisecond, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := eng.Start(ctx); err != nil {
		panic(err)
	}
	running, err := eng.Enqueue(ctx, jobs.Spec{Host: "local", Command: "echo started; echo $$ > pid; exec sleep 600"})
	if err != nil {
		panic(err)
	}
	queued, err := eng.Enqueue(ctx, jobs.Spec{Host: "local", Command: "echo after"})
	if err != nil {
		panic(err)
	}
	if _, err := eng.Wait(ctx, running.ID, jobs.WaitOptions{Timeout: 10 * time.Second, Offset: 0}); err != nil {
		panic(err)
	}
	os.Stdout.WriteString(running.ID + " " + queued.ID + "\n")
	select {}
}

func TestKilledProcessJobsAreAdopted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "sshjobs.db")
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "SSHJOBS_TEST_CHILD=recover", "SSHJOBS_TEST_DB="+path, "SSHJOBS_TEST_DIR="+dir)
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		child.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	ids := strings.Fields(line)
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	// The job's own process outlives the killed server, as a remote command
	// outlives a dead connection; end it so the test leaves nothing behind.
	waitForFile(t, filepath.Join(dir, "pid"))
	pid, _ := os.ReadFile(filepath.Join(dir, "pid"))
	exec.Command("kill", strings.TrimSpace(string(pid))).Run()
	time.Sleep(600 * time.Millisecond) // the dead process's lease expires

	h := newHarness(t, path, nil)
	lost := h.final(ids[0])
	if lost.State != jobs.StateLost || h.output(lost.ID) != "started\n" || lost.Error == "" {
		t.Fatalf("running job after its process died: %s %q, output %q", lost.State, lost.Error, h.output(lost.ID))
	}
	ran := h.final(ids[1])
	if ran.State != jobs.StateSucceeded || h.output(ran.ID) != "after\n" || ran.Owner != h.eng.Owner() {
		t.Fatalf("queued job after its process died: %s owner %s, output %q", ran.State, ran.Owner, h.output(ran.ID))
	}
}
