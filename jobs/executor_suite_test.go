package jobs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
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
	failing := map[string][]string{
		"late-start": {"TestHelperBrokenExecutor/started/before_the_first_write", "TestHelperBrokenExecutor/started/while_the_job_runs"},
		"exit-zero":  {"TestHelperBrokenExecutor/output/false", "TestHelperBrokenExecutor/output/exit_3"},
	}
	type result struct {
		out string
		err error
	}
	results := map[string]chan result{}
	for broken := range failing {
		// In parallel: the children mostly wait for their commands.
		ch := make(chan result, 1)
		results[broken] = ch
		go func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokenExecutor$", "-test.count=1", "-test.v", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), brokenEnv+"="+broken)
			out, err := cmd.CombinedOutput()
			ch <- result{string(out), err}
		}()
	}
	for broken, names := range failing {
		r := <-results[broken]
		var ee *exec.ExitError
		switch {
		case r.err == nil:
			t.Errorf("%s: the suite passed a broken executor:\n%s", broken, r.out)
			continue
		case !errors.As(r.err, &ee):
			t.Errorf("%s: run the child test: %v", broken, r.err)
			continue
		}
		for _, name := range names {
			if !strings.Contains(r.out, "--- FAIL: "+name+" ") {
				t.Errorf("%s: the suite failed, but not in %s:\n%s", broken, name, r.out)
			}
		}
	}
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
