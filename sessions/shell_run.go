package sessions

import (
	"context"
	"time"

	"github.com/sshjobs/sshjobs/internal/term"
	"github.com/sshjobs/sshjobs/jobs"
)

const (
	// defaultGrace is how long an interrupted job may take to stop when the
	// control names no grace.
	defaultGrace = 3 * time.Second
	// partialLineIdle is how long a line without a newline is held back (a CR
	// may still rewrite it, as progress bars do) once output goes quiet; then
	// it is emitted as it stands, so that a question or a slow progress line
	// shows up in the job's output.
	partialLineIdle = 2 * time.Second
	// exitStatusWait is how long to wait for the exit status of a shell whose
	// output ended, to tell `exit` from a dead connection.
	exitStatusWait = 2 * time.Second
	// interruptRepeat is how often ^C is sent again while an interrupted job
	// runs on: a ^C that lands while the shell is forking the command goes to
	// the shell, which then waits for the command before acting on it.
	interruptRepeat = time.Second
)

// Messages of jobs that end without their end marker.
const (
	msgShellExited = "the shell exited (the command ran `exit`); the next command gets a new shell (cwd and environment reset)"
	msgShutdown    = "sshjobs stopped while the job was running; the shell was closed"
	msgAbandoned   = "the shell abandoned the command line before it finished (a syntax error, or an interrupt); its exit code is unknown"
	msgKilled      = "the job's shell was closed to stop it; the next command gets a new shell"
)

// jobOutcome is how a job ended on a shell.
type jobOutcome struct {
	jobs.Result
	// shellGone: the shell cannot run another job (it exited, was closed,
	// or its connection died).
	shellGone bool
	// connLost: the shell's output ended without an exit status: the
	// connection under it is probably dead.
	connLost bool
}

// run types command into the shell and streams its output to t until its end
// marker, handling t's controls. The caller guarantees one run at a time.
func (s *shell) run(ctx context.Context, command string, t jobs.Task) jobOutcome {
	nonce := newNonce()
	sc := newMarkerScanner(nonce)
	var cl term.Cleaner
	emit := func(p []byte) {
		if len(p) > 0 {
			t.Write(p)
		}
	}

	s.idle.Store(false)
	s.writeAsync([]byte(frameCommand(nonce, []byte(command), &s.defined)), nil)

	commit := time.NewTimer(partialLineIdle)
	commit.Stop()
	defer commit.Stop()
	var graceC <-chan time.Time
	var cancelSig string
	var repeat *time.Ticker
	var repeatC <-chan time.Time
	defer func() {
		if repeat != nil {
			repeat.Stop()
		}
	}()
	controls := t.Controls()

	for {
		select {
		case p, ok := <-s.chunks:
			if !ok {
				emit(cl.Flush())
				return s.died(cancelSig)
			}
			out, done := sc.Feed(p)
			emit(cl.Write(out))
			if done {
				emit(cl.Flush())
				s.idle.Store(true)
				return s.ended(sc, cancelSig)
			}
			commit.Stop()
			if len(cl.Pending()) > 0 {
				commit.Reset(partialLineIdle)
			}

		case <-commit.C:
			emit(cl.Commit())

		case c, ok := <-controls:
			if !ok {
				controls = nil
				continue
			}
			switch {
			case len(c.Input) > 0:
				s.writeAsync(c.Input, replyTo(c.Done))
			case c.Signal == "INT":
				// ^C through the PTY: SIGINT to the foreground process group.
				s.writeAsync([]byte{0x03}, replyTo(c.Done))
				if cancelSig == "" {
					cancelSig = "INT"
					grace := c.Grace
					if grace <= 0 {
						grace = defaultGrace
					}
					graceC = time.After(grace)
					repeat = time.NewTicker(interruptRepeat)
					repeatC = repeat.C
				}
			case c.Signal != "":
				// TERM and KILL close the session: the hangup kills the job
				// (and the shell).
				// TODO: kill the job's process group and keep the shell.
				reply(c.Done, nil)
				emit(cl.Flush())
				return s.kill(c.Signal)
			default:
				reply(c.Done, nil)
			}

		case <-repeatC:
			s.writeAsync([]byte{0x03}, nil)

		case <-graceC:
			emit(cl.Flush())
			return s.kill("HUP")

		case <-ctx.Done():
			emit(cl.Flush())
			s.close()
			return jobOutcome{Result: jobs.Result{State: jobs.StateLost, Error: msgShutdown, Cwd: s.cwd}, shellGone: true}
		}
	}
}

// ended turns the scanner's result into the job's result.
func (s *shell) ended(sc *markerScanner, cancelSig string) jobOutcome {
	r := sc.result
	if r.Cwd != "" {
		s.cwd = r.Cwd
	}
	res := jobs.Result{Cwd: s.cwd}
	if r.HasCode {
		code := r.ExitCode
		res.ExitCode = &code
	}
	switch {
	case cancelSig != "":
		res.State, res.Signal = jobs.StateCancelled, cancelSig
	case sc.err != nil:
		res.State, res.Error = jobs.StateFailed, "reading the job's end marker: "+sc.err.Error()
	case r.Aborted:
		res.State, res.Error = jobs.StateFailed, msgAbandoned
	case r.ExitCode == 0:
		res.State = jobs.StateSucceeded
	default:
		res.State = jobs.StateFailed
	}
	return jobOutcome{Result: res}
}

// died is the result of a job whose shell's output ended.
func (s *shell) died(cancelSig string) jobOutcome {
	reason := s.closedBy()
	s.close()
	out := jobOutcome{shellGone: true, Result: jobs.Result{State: jobs.StateLost, Cwd: s.cwd}}
	if reason != "" {
		out.Error = reason
	} else if code, ok := s.exitStatus(exitStatusWait); ok {
		// The command ran `exit N`: like `ssh host 'cmd; exit N'`, the job
		// ends with N; the note says that the shell is gone.
		out.Error = msgShellExited
		if code >= 0 {
			out.ExitCode = &code
			out.State = jobs.StateFailed
			if code == 0 {
				out.State = jobs.StateSucceeded
			}
		}
	} else {
		out.connLost = true
		out.Error = "the connection was lost"
	}
	if cancelSig != "" {
		out.State, out.Signal = jobs.StateCancelled, cancelSig
	}
	return out
}

// kill closes the shell to stop its job.
func (s *shell) kill(signal string) jobOutcome {
	s.close()
	return jobOutcome{shellGone: true, Result: jobs.Result{
		State: jobs.StateCancelled, Signal: signal, Error: msgKilled, Cwd: s.cwd,
	}}
}

func replyTo(done chan<- error) func(error) {
	if done == nil {
		return nil
	}
	return func(err error) { reply(done, err) }
}

// reply delivers a control's result without ever blocking the job.
func reply(done chan<- error, err error) {
	if done == nil {
		return
	}
	select {
	case done <- err:
	default:
	}
}
