package sessions

import (
	"os"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
)

// The SSH executor passes the executor contract, with every capability, on
// both servers. The suite resolves each job through the executor
// (jobs.DestinationResolver), as the engine does at enqueue.
func TestExecutorSuite(t *testing.T) {
	t.Parallel()
	caps := jobstest.Capabilities{
		Sessions: true, Detached: true, Prompts: true,
		// A shell session sees only $?: 128+n for a command killed by n.
		SignalExitCodes: true,
	}
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, srv *sshtest.Server) {
		jobstest.ExerciseExecutor(t, func(t *testing.T) jobs.Executor {
			// Spools in a temporary folder: the test servers run as this
			// user, on this machine.
			return NewExecutor(newTestPool(t, srv, PoolConfig{}), ExecutorConfig{SpoolDir: spoolDir(t)})
		}, srv.Alias, caps)
	})
}

// spoolDir is a temporary folder for detached jobs' spools. Not t.TempDir:
// the suite's "shutdown leaves it running" job goes on after its test, and
// when it ends it writes into its spool, maybe while the folder is being
// removed. That is the likely cause of one "TempDir RemoveAll: directory
// not empty" in TestExecutorSuite/openssh/detached, which did not come
// back in later runs. The removal is tried again until that job is done.
func spoolDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "sshjobs-spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove the spool folder: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}
