package sessions_test

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

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sqlstore"
)

// The child process of TestDetachedSurvivesServerKill: an sshjobs engine that
// starts a detached job, prints its id once some of its output is stored, and
// waits to be killed.
func init() {
	if os.Getenv("SSHJOBS_TEST_CHILD") != "detach" {
		return
	}
	t := &testing.T{} // only for the helpers' Fatal, which must not happen here
	pool := newDetachPool(t, os.Getenv("SSHJOBS_TEST_SSH_CONFIG"), os.Getenv("SSHJOBS_TEST_SPOOL"))
	e := newDetachEngine(t, os.Getenv("SSHJOBS_TEST_DB"), pool, time.Second)
	d := e.enqueue(t, os.Getenv("SSHJOBS_TEST_ALIAS"), countCmd(60), true)
	if _, err := e.Wait(context.Background(), d.ID, jobs.WaitOptions{Timeout: 20 * time.Second, Offset: int64(len(countOutput(15)))}); err != nil {
		panic(err)
	}
	os.Stdout.WriteString(d.ID + "\n")
	select {}
}

// TestDetachedSurvivesServerKill kills the sshjobs process (SIGKILL) while
// its detached job runs; a new engine on the same database adopts the job
// once the lease ran out and follows it from the stored offset to the end.
func TestDetachedSurvivesServerKill(t *testing.T) {
	t.Parallel()
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		dbPath := filepath.Join(t.TempDir(), "sshjobs.db")
		spool := t.TempDir()
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), "SSHJOBS_TEST_CHILD=detach", "SSHJOBS_TEST_DB="+dbPath,
			"SSHJOBS_TEST_SSH_CONFIG="+srv.SSHConfig, "SSHJOBS_TEST_ALIAS="+srv.Alias, "SSHJOBS_TEST_SPOOL="+spool)
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
			child.Wait()
			t.Fatalf("child: %v", err)
		}
		id := strings.TrimSpace(line)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		killed := time.Now()

		stored := storedBytes(t, dbPath, id)
		// The dead process's lease (1s) runs out; a process started sooner
		// would adopt the job at its next adoption round instead.
		time.Sleep(time.Until(killed.Add(1100 * time.Millisecond)))

		start := time.Now()
		pool := newDetachPool(t, srv.SSHConfig, spool)
		e := newDetachEngine(t, dbPath, pool, time.Second)
		j := e.waitFor(t, id, stored, 20*time.Second)
		catchUp := time.Since(start)
		if j.State.Final() && j.OutputBytes <= stored {
			t.Fatalf("job ended without new output: %s (%s)", j.State, j.Error)
		}
		t.Logf("catch-up after restart: %v from the new engine's start to the first new byte stored (%d bytes stored at the kill, %d now)",
			catchUp.Round(time.Millisecond), stored, j.OutputBytes)
		j = e.waitFor(t, id, -1, 30*time.Second)
		if j.Owner != e.Owner() {
			t.Errorf("job owner %s, want the new engine %s", j.Owner, e.Owner())
		}
		checkCount(t, e, j, 60)
	})
}

// storedBytes reads a job's stored output size without adopting anything.
func storedBytes(t testing.TB, dbPath, id string) int64 {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dbPath, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	j, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobs.StateRunning || j.Attach == "" {
		t.Fatalf("job %s when its server was killed: %s, attach %q", id, j.State, j.Attach)
	}
	return j.OutputBytes
}
