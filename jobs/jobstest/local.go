// Package jobstest holds what tests of the job engine need besides a store: an
// executor that runs commands as local processes, so that the engine is tested
// with real output, exit codes, stdin and signals but without SSH.
package jobstest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// LocalExecutor runs each job as `sh -c COMMAND` in its own process group on
// this machine. Stdout and stderr both go to the job's output.
type LocalExecutor struct {
	// Dir is the working directory of the commands.
	Dir string

	mu      sync.Mutex // protects the field below
	started int
}

var _ jobs.Executor = (*LocalExecutor)(nil)

// Started is how many jobs Run has started.
func (x *LocalExecutor) Started() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.started
}

// Run implements jobs.Executor.
func (x *LocalExecutor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	cmd := exec.Command("/bin/sh", "-c", j.Command)
	cmd.Dir = x.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// One pipe for stdout and stderr (merged in order, as a terminal shows
	// them), read only after Started: the contract wants Started before the
	// first Write, and exec's own copying goroutine would start writing as
	// soon as the process runs.
	outR, outW, err := os.Pipe()
	if err != nil {
		return jobs.Result{State: jobs.StateError, Error: err.Error()}
	}
	defer outR.Close()
	cmd.Stdout = outW
	cmd.Stderr = outW
	stdin, err := cmd.StdinPipe()
	if err != nil {
		outW.Close()
		return jobs.Result{State: jobs.StateError, Error: err.Error()}
	}
	err = cmd.Start()
	outW.Close() // the child holds its copy; EOF once it and its children exit
	if err != nil {
		return jobs.Result{State: jobs.StateError, Error: "start: " + err.Error()}
	}
	x.mu.Lock()
	x.started++
	x.mu.Unlock()
	t.Started(jobs.Start{})

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(t, outR)
	}()
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		// All output is in before Run returns, as with exec's own copying.
		<-copied
		done <- err
	}()
	var cancelled bool
	var kill <-chan time.Time
	for {
		select {
		case err := <-done:
			return result(err, cancelled, x.Dir)
		case c := <-t.Controls():
			var err error
			switch {
			case c.Input != nil:
				_, err = stdin.Write(c.Input)
			case c.Signal != "":
				cancelled = true
				err = signalGroup(cmd.Process.Pid, c.Signal)
				if c.Signal != "KILL" && kill == nil {
					kill = time.After(c.Grace)
				}
			}
			if c.Done != nil {
				c.Done <- err
			}
		case <-kill:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return jobs.Result{State: jobs.StateLost}
		}
	}
}

func signalGroup(pid int, name string) error {
	sig := map[string]syscall.Signal{"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL}[name]
	if sig == 0 {
		return errors.New("unknown signal " + name)
	}
	return syscall.Kill(-pid, sig)
}

func result(err error, cancelled bool, dir string) jobs.Result {
	var ee *exec.ExitError
	switch {
	case err == nil && cancelled:
		code := 0
		return jobs.Result{State: jobs.StateCancelled, ExitCode: &code, Cwd: dir}
	case err == nil:
		code := 0
		return jobs.Result{State: jobs.StateSucceeded, ExitCode: &code, Cwd: dir}
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		r := jobs.Result{State: jobs.StateFailed, Cwd: dir}
		if cancelled {
			r.State = jobs.StateCancelled
		}
		if ws.Signaled() {
			r.Signal = signalName(ws.Signal())
		} else {
			code := ws.ExitStatus()
			r.ExitCode = &code
		}
		return r
	}
	return jobs.Result{State: jobs.StateLost, Error: err.Error()}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGKILL:
		return "KILL"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGPIPE:
		return "PIPE"
	}
	return s.String()
}
