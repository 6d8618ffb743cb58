package sessions

import (
	"context"
	"errors"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// cancelState is how far stopping a job has gone. SIGINT comes first and is
// repeated; after the grace period, or at once for TERM and KILL, a stronger
// signal follows. Every signal goes to the job's process group through another
// channel (shell_kill.go), so the shell stays; only if the job outlives
// SIGKILL by killWait is the shell closed.
//
// SIGINT is not typed as ^C: a ^C that lands while the shell is between two
// commands of the job (forking the next one) interrupts the shell, which then
// abandons the line while the new command holds the terminal; bash, reading
// its next line from a terminal it no longer controls, gets EIO and exits. ^C
// is typed only when the job is the shell itself (a builtin such as read),
// which nothing else can interrupt.
type cancelState struct {
	requested bool   // a caller asked to cancel (not our own stop)
	sig       string // the strongest signal sent so far: the job's Signal
	intBusy   bool   // a SIGINT is on its way (repeats wait for it)
	retries   int    // SIGINTs sent again at once since the last repeat
	graceC    <-chan time.Time
	lastC     <-chan time.Time
}

var signalRank = map[string]int{"": 0, "INT": 1, "TERM": 2, "KILL": 3}

// raise records sig as sent if it is stronger than what was.
func (c *cancelState) raise(sig string) {
	if signalRank[sig] > signalRank[c.sig] {
		c.sig = sig
	}
}

func (c *cancelState) sigOr(def string) string {
	if c.sig != "" {
		return c.sig
	}
	return def
}

type killReply struct {
	sig    string
	detail string
	err    error
}

// control handles one of the task's controls: input or a signal.
func (r *runner) control(ctx context.Context, c jobs.Control) {
	s := r.s
	switch {
	case len(c.Input) > 0:
		if c.Secret {
			// Before the write: the remote may echo it at once.
			r.mask.add(c.Input)
		}
		s.writeAsync(c.Input, replyTo(c.Done))
	case c.Signal == "INT":
		reply(c.Done, nil)
		r.cancel.requested = true
		if r.cancel.sig == "" {
			r.interrupt(ctx)
			r.cancel.graceC = time.After(graceOf(c))
			r.repeatInterrupt()
		}
	case c.Signal == "TERM":
		reply(c.Done, nil)
		r.cancel.requested = true
		if signalRank[r.cancel.sig] < signalRank["TERM"] {
			r.killGroup(ctx, "TERM")
			r.cancel.graceC = time.After(graceOf(c))
		}
	case c.Signal == "KILL":
		reply(c.Done, nil)
		r.cancel.requested = true
		r.cancel.graceC = nil
		r.killGroup(ctx, "KILL")
	default:
		reply(c.Done, nil)
	}
}

// interrupt sends SIGINT to the job, unless one is still on its way.
func (r *runner) interrupt(ctx context.Context) {
	if r.cancel.intBusy {
		return
	}
	r.cancel.intBusy = true
	r.killGroup(ctx, "INT")
}

// maxInterruptRetries bounds the SIGINTs sent again at once between two
// repeats: a foreground command that cannot be signalled (another user's,
// such as sudo's) must not keep a signal channel busy all through the grace.
const maxInterruptRetries = 3

// repeatInterrupt interrupts the job again every interruptRepeat until it
// ends.
func (r *runner) repeatInterrupt() {
	if r.repeat == nil {
		r.repeat = time.NewTicker(interruptRepeat)
		r.repeatC = r.repeat.C
	}
}

// graceOf is how long the job may take to stop after c's signal before its
// process group is killed: zero kills at once.
func graceOf(c jobs.Control) time.Duration { return max(c.Grace, 0) }

// killGroup signals the job's process group in the background; the reply
// comes back on r.killC. After KILL, the shell is given killWait to print the
// end marker.
func (r *runner) killGroup(ctx context.Context, sig string) {
	r.cancel.raise(sig)
	if sig == "KILL" && r.cancel.lastC == nil {
		r.cancel.lastC = time.After(killWait)
	}
	r.kills.Add(1)
	go func() {
		defer r.kills.Done()
		detail, err := r.s.signalJob(ctx, sig)
		select { // the run may have ended: then nobody reads
		case r.killC <- killReply{sig: sig, detail: detail, err: err}:
		case <-r.done:
		}
	}()
}

// killed handles the result of killGroup.
func (r *runner) killed(ctx context.Context, rep killReply) {
	if rep.sig == "INT" {
		r.cancel.intBusy = false
	}
	switch {
	case errors.Is(rep.err, errShellInForeground):
		// A builtin (read, a loop in the shell itself): only ^C stops it.
		r.s.writeAsync([]byte{0x03}, nil)
		r.log().Info("job runs in the shell itself: sent ^C", "job", r.jr.ID, "shell", r.s.name, "signal", rep.sig)
	case errors.Is(rep.err, errJobBetweenCommands):
		// A SIGINT that missed every command it looked at (a loop of short
		// commands on a loaded host) is tried again at once, while it is
		// still the strongest signal sent: a try that found nothing to
		// signal has signalled nothing. TERM and KILL are followed by their
		// grace.
		r.log().Info("nothing to signal: the job was between two of its commands", "job", r.jr.ID, "shell", r.s.name, "signal", rep.sig)
		if rep.sig == "INT" && r.cancel.sig == "INT" && r.cancel.retries < maxInterruptRetries {
			r.cancel.retries++
			r.interrupt(ctx)
		}
	case rep.err != nil:
		r.log().Warn("signal job's process group", "job", r.jr.ID, "shell", r.s.name, "signal", rep.sig, "err", rep.err)
		if rep.sig == "INT" && errors.Is(rep.err, errNoSignalChannel) {
			// No exec channel (a restricted account?): ^C is still better
			// than nothing, and KILL after the grace closes the shell if
			// need be.
			r.s.writeAsync([]byte{0x03}, nil)
		}
	default:
		r.log().Info("signalled job's process group", "job", r.jr.ID, "shell", r.s.name, "signal", rep.sig, "target", rep.detail)
	}
}
