package sessions

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/internal/term"
	"github.com/sshjobs/sshjobs/jobs"
)

const (
	// partialLineIdle is how long a line without a newline is held back (a CR
	// may still rewrite it, as progress bars do) once output goes quiet; then
	// it is emitted as it stands, so that a question or a slow progress line
	// shows up in the job's output.
	partialLineIdle = 2 * time.Second
	// promptIdle is how long output must be quiet, with an unfinished last
	// line, before that line is checked for a prompt: a line followed by more
	// output was not waiting for anyone.
	promptIdle = 300 * time.Millisecond
	// exitStatusWait is how long to wait for the exit status of a shell whose
	// output ended, to tell `exit` from a dead connection.
	exitStatusWait = 2 * time.Second
	// interruptRepeat is how often SIGINT is sent again while an interrupted
	// job runs on: one that lands between two of the job's commands is lost
	// on the shell, which waits for the next command before acting on it.
	interruptRepeat = time.Second
	// killWait is how long a job may take to end after its process group got
	// SIGKILL (a process stuck in the kernel, or one outside the group holding
	// the shell) before the shell is closed as the last resort.
	killWait = 3 * time.Second
	// failStopWait is how long a job we stopped ourselves (sudo refused the
	// password) may take to end after ^C before its process group is killed.
	failStopWait = 3 * time.Second
)

// Messages of jobs that end without their end marker.
const (
	msgShellExited = "the shell exited (the command ran `exit`); the next command gets a new shell (cwd and environment reset)"
	msgShutdown    = "sshjobs stopped while the job was running; the shell was closed"
	msgAbandoned   = "the shell abandoned the command line before it finished (a syntax error, or an interrupt); its exit code is unknown"
	msgKilled      = "the job did not stop when its process group was killed; its shell was closed to stop it, and the next command gets a new shell"
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
	// notRun: the shell exited before the job's begin marker, so the command
	// never ran and may run on a new shell.
	notRun bool
}

// run runs command as a plain job (no sudo, no secrets).
func (s *shell) run(ctx context.Context, command string, t jobs.Task) jobOutcome {
	return s.runJob(ctx, jobRun{Command: command}, t)
}

// runJob types the job's command into the shell and streams its output to t
// until its end marker, handling t's controls, prompts and sudo. The caller
// guarantees one run at a time.
func (s *shell) runJob(ctx context.Context, jr jobRun, t jobs.Task) jobOutcome {
	if jr.logger == nil {
		jr.logger = s.logger
	}
	nonce := newNonce()
	r := &runner{
		s: s, jr: jr, t: t,
		sc:        newMarkerScanner(nonce),
		mask:      &s.mask,
		commit:    stoppedTimer(),
		quiet:     stoppedTimer(),
		takeover:  stoppedTimer(),
		takeoverC: make(chan takeoverReply),
		secretC:   make(chan secretReply, 2),
		killC:     make(chan killReply),
		done:      make(chan struct{}),
		settle:    stoppedTimer(),
		screenC:   make(chan screenReq),
	}
	defer r.stop()
	command := jr.Command
	if jr.Sudo {
		command = sudoCommand(nonce, jr.Command)
		r.cut = newPromptCutter(sudoPrompt(nonce), sudoStarted(nonce))
	}
	s.idle.Store(false)
	term := s.jobTerminal(jr)
	r.scr = newScreen(term.cols, term.rows)
	if jr.screens != nil && jr.ID != "" {
		jr.screens.add(jr.ID, screenPort{req: r.screenC, done: r.done, cols: term.cols, rows: term.rows})
	}
	s.writeAsync([]byte(frameCommand(nonce, []byte(command), &s.defined)), nil)
	out := r.loop(ctx)
	r.endScreens()
	if !out.shellGone {
		s.restoreTerminal(term)
	}
	return out
}

// runner is the state of one job's run on a shell.
type runner struct {
	s  *shell
	jr jobRun
	t  jobs.Task

	sc   *markerScanner
	cut  *promptCutter // our sudo prompt, with jr.Sudo
	cl   term.Cleaner
	mask *masker // the shell's: a secret stays masked for the shell's life

	commit *time.Timer // partialLineIdle
	quiet  *time.Timer // promptIdle

	// An interactive shell taking over the terminal (shell_takeover.go).
	takeover  *time.Timer // takeoverIdle
	takeoverC chan takeoverReply
	outGen    int    // counts chunks of output: a check answers for one
	quietLine string // the unfinished last line when output went quiet

	// prompted: the job is waiting_input (t.Prompt(&p) was called and no
	// output came since).
	prompted bool

	// sudo (shell_sudo.go)
	secretC     chan secretReply
	sudoAnswers int // our prompt answered
	// failState and failMsg end the job as we decided (sudo refused, no
	// password), whatever its exit code.
	failState jobs.State
	failMsg   string
	stopC     <-chan time.Time

	// The job's screen (screen.go): requests come on screenC; those waiting
	// for the screen to settle wait in screens, timed by settle.
	scr     *screen
	screenC chan screenReq
	screens []pendingScreen
	settle  *time.Timer
	lastOut time.Time // when output last came
	scrGen  int       // counts chunks of output that reached the screen

	// cancel (shell_cancel.go)
	killC   chan killReply
	done    chan struct{}  // closed when the run ends: signals in flight give up
	kills   sync.WaitGroup // signals in flight: the run waits for them (stop)
	cancel  cancelState
	repeat  *time.Ticker
	repeatC <-chan time.Time
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func (r *runner) stop() {
	close(r.done)
	r.commit.Stop()
	r.quiet.Stop()
	r.takeover.Stop()
	r.settle.Stop()
	if r.repeat != nil {
		r.repeat.Stop()
	}
	// A signal still on its way (a repeated INT, the KILL after the grace)
	// signals whatever runs in the foreground of the shell's terminal when
	// its script gets there: the shell's next job, if that had started. The
	// shell takes no job before the signals of this one are done.
	r.kills.Wait()
}

func (r *runner) log() *slog.Logger { return r.jr.logger }

// emit stores clean output, with the job's secrets masked.
func (r *runner) emit(p []byte) {
	if p = r.mask.Write(p); len(p) > 0 {
		r.t.Write(p)
	}
}

// flush emits everything held back: the output ended.
func (r *runner) flush() {
	if r.cut != nil {
		r.emit(r.cl.Write(r.cut.Flush()))
	}
	r.emit(r.cl.Flush())
	if p := r.mask.Flush(); len(p) > 0 {
		r.t.Write(p)
	}
}

func (r *runner) loop(ctx context.Context) jobOutcome {
	s := r.s
	controls := r.t.Controls()
	for {
		select {
		case p, ok := <-s.chunks:
			if !ok {
				r.flush()
				return r.finish(s.died(r.cancel.sig, r.sc.phase != phaseBegin))
			}
			if r.output(ctx, p) {
				r.flush()
				// The shell now discards what it reads up to this line
				// (frameCommand): input the job left unread goes, with
				// anything we wrote before the end marker came back.
				s.writeAsync([]byte(drainLine(r.sc.nonce)), nil)
				s.idle.Store(true)
				return r.finish(s.ended(r.sc, r.cancel.sig))
			}

		case <-r.commit.C:
			r.emit(r.cl.Commit())

		case <-r.quiet.C:
			r.checkPrompt()

		case <-r.takeover.C:
			r.checkTakeover(ctx)

		case rep := <-r.takeoverC:
			if rep.found && rep.gen == r.outGen && !r.cancel.requested && r.failMsg == "" {
				r.flush()
				s.closeWith(msgTakeover)
				r.log().Info("an interactive shell took over the terminal: shell closed", "job", r.jr.ID, "shell", s.name)
				return jobOutcome{shellGone: true, Result: jobs.Result{State: jobs.StateFailed, Error: msgTakeover, Cwd: s.cwd}}
			}

		case c, ok := <-controls:
			if !ok {
				controls = nil
				continue
			}
			r.control(ctx, c)

		case rep := <-r.secretC:
			r.answerSudo(rep)

		case rep := <-r.killC:
			r.killed(ctx, rep)

		case req := <-r.screenC:
			r.screenAsked(req)

		case <-r.settle.C:
			r.settled()

		case <-r.repeatC:
			r.cancel.retries = 0
			r.interrupt(ctx)

		case <-r.cancel.graceC:
			r.cancel.graceC = nil
			r.killGroup(ctx, "KILL")

		case <-r.stopC:
			r.stopC = nil
			r.killGroup(ctx, "KILL")

		case <-r.cancel.lastC:
			r.flush()
			return r.finish(s.closeToStop(r.cancel.sigOr("KILL")))

		case <-ctx.Done():
			r.flush()
			s.close()
			return jobOutcome{Result: jobs.Result{State: jobs.StateLost, Error: msgShutdown, Cwd: s.cwd}, shellGone: true}
		}
	}
}

// output handles a chunk of the shell's output; done reports the job's end
// marker.
func (r *runner) output(ctx context.Context, p []byte) (done bool) {
	out, done := r.sc.Feed(p)
	if r.cut != nil && len(out) > 0 {
		var n int
		if out, n = r.cut.Feed(out); n > 0 {
			r.sudoPrompted(ctx, n)
		}
	}
	if len(out) > 0 {
		r.lastOut = time.Now()
		r.scrGen++
		r.scr.write(out, r.lastOut)
	}
	var before string
	if r.prompted {
		before = string(r.cl.Pending())
	}
	clean := r.cl.Write(out)
	r.emit(clean)
	if done {
		return true
	}
	// Output resumed: the job no longer waits. Bytes that change nothing a
	// person would see (a cursor escape) do not count.
	if r.prompted && (len(clean) > 0 || len(r.cl.Pending()) > 0 && string(r.cl.Pending()) != before) {
		r.prompted = false
		r.t.Prompt(nil)
	}
	r.commit.Stop()
	r.quiet.Stop()
	r.takeover.Stop()
	r.outGen++
	if len(r.screens) > 0 && len(out) > 0 {
		r.armScreens(r.lastOut)
	}
	if len(r.cl.Pending()) > 0 {
		r.commit.Reset(partialLineIdle)
		r.quiet.Reset(promptIdle)
		r.quietLine = string(r.cl.Pending())
		r.takeover.Reset(takeoverIdle)
	}
	return false
}

// finish applies what the runner decided to the shell's verdict.
func (r *runner) finish(out jobOutcome) jobOutcome {
	if r.failMsg != "" && !r.cancel.requested {
		out.State, out.Error, out.Signal = r.failState, r.failMsg, ""
	}
	return out
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
		if r.HasCode && r.ExitCode > 128 {
			// 128+n is the shell saying "killed by signal n": no exit code of
			// its own (a job that caught the signal and exited keeps its code).
			res.ExitCode = nil
		}
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

// died is the result of a job whose shell's output ended; begun says whether
// the job's begin marker was seen.
func (s *shell) died(cancelSig string, begun bool) jobOutcome {
	reason := s.closedBy()
	s.close()
	out := jobOutcome{shellGone: true, Result: jobs.Result{State: jobs.StateLost, Cwd: s.cwd}}
	if reason != "" {
		out.Error = reason
	} else if code, ok := s.exitStatus(exitStatusWait); ok && !begun && cancelSig == "" {
		// The shell was gone before the job's line was read (its output is
		// complete: the exit status came after it).
		out.notRun = true
		out.Error = "the shell exited before the command began"
	} else if ok {
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

// closeToStop closes the shell to stop its job: the last resort, when killing the
// job's process group did not end it.
func (s *shell) closeToStop(signal string) jobOutcome {
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
