package sessions

import (
	"testing"

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
			return NewExecutor(newTestPool(t, srv, PoolConfig{}), ExecutorConfig{SpoolDir: t.TempDir()})
		}, srv.Alias, caps)
	})
}
