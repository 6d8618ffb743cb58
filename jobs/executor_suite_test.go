package jobs_test

import (
	"context"
	"os"
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
)

// LocalExecutor passes the executor contract (its core: it has no persistent
// shells, no detached jobs and no prompt detection).
func TestExecutorSuite(t *testing.T) {
	jobstest.ExerciseExecutor(t, func(t *testing.T) jobs.Executor {
		return &jobstest.LocalExecutor{Dir: t.TempDir()}
	}, "localhost", jobstest.Capabilities{})
}

// brokenEnv selects the broken executor TestHelperBrokenExecutor runs the
// suite against; unset, that test is skipped.
const brokenEnv = "SSHJOBS_BROKEN_EXECUTOR"

// The suite bites: each deliberately broken executor fails it, in the
// subtest that names its fault. The suite runs in a child process because a
// failing subtest would fail this test too.
func TestExecutorSuiteBites(t *testing.T) {
	jobstest.ExpectFailures(t, "TestHelperBrokenExecutor", brokenEnv, map[string][]string{
		"late-start": {"started/before_the_first_write", "started/while_the_job_runs"},
		"exit-zero":  {"output/false", "output/exit_3"},
	})
}

// TestHelperBrokenExecutor is the child of TestExecutorSuiteBites.
func TestHelperBrokenExecutor(t *testing.T) {
	broken := os.Getenv(brokenEnv)
	if broken == "" {
		t.Skip("run by TestExecutorSuiteBites, with " + brokenEnv + " set")
	}
	jobstest.ExerciseExecutor(t, func(t *testing.T) jobs.Executor {
		return brokenExecutor{broken: broken, x: &jobstest.LocalExecutor{Dir: t.TempDir()}}
	}, "localhost", jobstest.Capabilities{})
}

// brokenExecutor is LocalExecutor with one fault.
type brokenExecutor struct {
	broken string
	x      jobs.Executor
}

func (b brokenExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	switch b.broken {
	case "late-start":
		// Started only once the command ended: for a detached job, its
		// session would stay busy for its whole run.
		lt := &lateStart{Task: t}
		res := b.x.Run(ctx, j, lt)
		t.Started(lt.start)
		return res
	case "exit-zero":
		res := b.x.Run(ctx, j, t)
		if res.State == jobs.StateFailed {
			zero := 0
			res.State, res.ExitCode, res.Signal = jobs.StateSucceeded, &zero, ""
		}
		return res
	}
	panic("unknown broken executor " + b.broken)
}

// lateStart holds back Started.
type lateStart struct {
	jobs.Task
	start jobs.Start
}

func (l *lateStart) Started(s jobs.Start) { l.start = s }
