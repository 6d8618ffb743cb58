package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// Reconnect backoff of a follow whose connection dropped: the first retry
// comes soon (a dropped TCP connection usually redials at once), later ones
// slow down to one attempt per followBackoffMax while the host is away.
const (
	followBackoffMin = 250 * time.Millisecond
	followBackoffMax = 30 * time.Second
	// followStopWait bounds the wait for a follow channel's copy goroutine
	// after the channel was closed; past it the writer is cut off anyway.
	followStopWait = 2 * time.Second
	// maxBrokenFollows ends a job lost once its follow script failed this
	// many times in a row on a live connection.
	maxBrokenFollows = 5
)

var errFollowStopped = errors.New("follow stopped")

// follower streams one detached job's spool into its task, across dropped
// connections, and carries out its cancel.
type follower struct {
	e   *Executor
	h   *sshconfig.Host
	j   *jobs.Job
	t   jobs.Task
	att attachInfo
	log func(msg string, args ...any)

	mu  sync.Mutex
	off int64 // spool bytes handed to t: the next follow starts here

	// Owned by the follow goroutine.
	signal   string           // the last signal delivered to the job ("" none)
	pending  []jobs.Control   // signals that wait for a connection
	graceC   <-chan time.Time // escalation to KILL
	graceEnd time.Time        // when graceC fires
	// recycled is set when a cancel found the pid taken by another process.
	recycled string
	// broken counts follows in a row whose script ended without a verdict.
	broken int
}

func newFollower(e *Executor, h *sshconfig.Host, j *jobs.Job, t jobs.Task, att attachInfo) *follower {
	f := &follower{e: e, h: h, j: j, t: t, att: att, off: j.OutputBytes}
	f.log = func(msg string, args ...any) {
		e.log.Info(msg, append([]any{"job", j.ID, "host", h.Key()}, args...)...)
	}
	return f
}

func (f *follower) offset() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.off
}

// follow runs until the job is final, or ctx ends (the engine stops; the job
// is left running for the next process to re-attach).
func (f *follower) follow(ctx context.Context) jobs.Result {
	delay := followBackoffMin
	for {
		if ctx.Err() != nil {
			return f.leave()
		}
		c, err := f.e.pool.acquire(ctx, f.h)
		if err == nil {
			start := f.offset()
			res, done := f.round(ctx, c)
			f.e.pool.release(c)
			if done {
				return res
			}
			if f.offset() > start {
				delay, f.broken = followBackoffMin, 0
			}
		} else if ctx.Err() == nil {
			f.log("detached job: cannot reconnect", "err", err, "retry_in", delay)
		}
		if res, done := f.pause(ctx, delay); done {
			return res
		}
		delay = min(2*delay, followBackoffMax)
	}
}

// leave is the result when the engine stops: not final, so the job stays
// running and is re-attached later.
func (f *follower) leave() jobs.Result {
	f.log("detached job left running", "offset", f.offset())
	return jobs.Result{State: jobs.StateRunning, Error: "sshjobs stopped; the detached job goes on and is re-attached by the next sshjobs process"}
}

// pause waits d between connection attempts, answering controls meanwhile.
func (f *follower) pause(ctx context.Context, d time.Duration) (jobs.Result, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return jobs.Result{}, false
		case <-ctx.Done():
			return f.leave(), true
		case c := <-f.t.Controls():
			f.hold(c)
		case <-f.graceC:
			f.graceC = nil
			f.pending = append(f.pending, jobs.Control{Signal: "KILL"})
		}
	}
}

// hold answers an input at once, and keeps a signal until a connection can
// deliver it.
func (f *follower) hold(c jobs.Control) {
	if c.Signal == "" {
		reply(c.Done, f.noInput())
		return
	}
	f.pending = append(f.pending, c)
}

func (f *follower) noInput() error {
	return fmt.Errorf("job %s is detached: it has no terminal, so it takes no input", f.j.ID)
}

// round follows the spool over one exec channel of c until the job ends (done)
// or the channel fails (not done: the caller reconnects and calls again).
func (f *follower) round(ctx context.Context, c *conn) (jobs.Result, bool) {
	sess, err := c.openChannel(ctx)
	if err != nil {
		f.log("detached job: cannot open a follow channel", "err", err)
		if c.alive() && c.ping(5*time.Second) != nil {
			c.fail(fmt.Errorf("opening a channel failed: %w", err))
		}
		return jobs.Result{}, false
	}
	nonce := newNonce()
	w := &spoolWriter{f: f, marker: []byte(nonce + "\n")}
	var stderr limitedBuffer
	sess.Stdout, sess.Stderr = w, &stderr
	cmd := execCommand(followScript, nonce, f.att.Spool, strconv.FormatInt(f.offset(), 10), strconv.Itoa(f.att.PID), f.att.Start)
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		f.log("detached job: cannot start following", "err", err)
		return jobs.Result{}, false
	}
	waitC := make(chan error, 1)
	go func() { waitC <- sess.Wait() }()
	waited := false
	defer func() {
		sess.Close()
		if !waited {
			select {
			case <-waitC:
			case <-time.After(followStopWait):
			}
		}
		w.stop() // no write reaches t once round returns
	}()

	for len(f.pending) > 0 {
		pc := f.pending[0]
		f.pending = f.pending[1:]
		if res, done := f.deliver(ctx, c, pc); done {
			return res, true
		}
	}
	for {
		select {
		case err := <-waitC:
			waited = true
			verdict := reportLines(nonce, stderr.String())
			if err == nil && len(verdict) > 0 {
				return f.ended(ctx, c, verdict[len(verdict)-1]), true
			}
			if ctx.Err() == nil {
				f.log("detached job: follow channel ended", "err", err, "offset", f.offset(), "stderr", stderr.String())
			}
			var exitErr *ssh.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				return jobs.Result{}, false // the connection failed: reconnect
			}
			// The script itself ended without a verdict: a host where it
			// cannot run. Retrying cannot help for ever.
			if f.broken++; f.broken >= maxBrokenFollows {
				return jobs.Result{State: jobs.StateLost, Error: fmt.Sprintf(
					"cannot follow the detached job's spool %s on %s: the follow script failed %d times (%v; %s); the job may still run there",
					f.att.Spool, f.h.Key(), f.broken, err, strings.TrimSpace(stderr.String()))}, true
			}
			return jobs.Result{}, false
		case <-ctx.Done():
			return f.leave(), true
		case ctl := <-f.t.Controls():
			if ctl.Signal == "" {
				reply(ctl.Done, f.noInput())
				continue
			}
			if res, done := f.deliver(ctx, c, ctl); done {
				return res, true
			}
		case <-f.graceC:
			f.graceC = nil
			if res, done := f.deliver(ctx, c, jobs.Control{Signal: "KILL"}); done {
				return res, true
			}
		}
	}
}

// ended turns the follow's verdict into the job's result, and removes the
// spool of a job whose output is all in.
func (f *follower) ended(ctx context.Context, c *conn, verdict []string) jobs.Result {
	var res jobs.Result
	remove := true
	switch verdict[0] {
	case "code":
		code, err := strconv.Atoi(verdictArg(verdict))
		switch {
		case err != nil:
			res = jobs.Result{State: jobs.StateFailed, Error: fmt.Sprintf("the detached job's code file holds %q, not an exit code", verdictArg(verdict))}
		case f.signal != "":
			res = jobs.Result{State: jobs.StateCancelled, Signal: f.signal}
			if code < 128 { // 128+n is the shell's way of saying "killed by signal n"
				res.ExitCode = &code
			}
		case code == 0:
			res = jobs.Result{State: jobs.StateSucceeded, ExitCode: &code}
		default:
			res = jobs.Result{State: jobs.StateFailed, ExitCode: &code}
		}
	case "gone":
		if f.signal != "" {
			res = jobs.Result{State: jobs.StateCancelled, Signal: f.signal}
			break
		}
		msg := fmt.Sprintf("the detached process (pid %d) on %s ended without writing its exit code (killed, or the host rebooted); its output up to then is kept", f.att.PID, f.h.Key())
		if f.recycled != "" {
			msg = f.recycled
		}
		res = jobs.Result{State: jobs.StateLost, Error: msg}
	case "nospool":
		remove = false
		res = jobs.Result{State: jobs.StateLost, Error: fmt.Sprintf("the detached job's spool folder %s on %s is gone; its output up to then is kept", f.att.Spool, f.h.Key())}
	case "short":
		remove = false
		res = jobs.Result{State: jobs.StateLost, Error: fmt.Sprintf(
			"the detached job's output file in %s on %s holds %s bytes, fewer than the %d already stored: it was replaced; left in place", f.att.Spool, f.h.Key(), verdictArg(verdict), f.offset())}
	default:
		remove = false
		res = jobs.Result{State: jobs.StateLost, Error: fmt.Sprintf("following the detached job: unexpected report %q", verdict)}
	}
	if res.State == jobs.StateCancelled && f.drainGroup(ctx, c) {
		// Error stays empty: the engine fills in why the job was cancelled.
		f.log("detached job: killed what was left in its process group after the grace period", "signal", f.signal, "pgid", f.att.PGID)
	}
	if remove {
		// The spool is the only other copy of the output, and of the exit
		// code: it goes once the output is stored and the end recorded.
		if err := f.t.Flush(context.WithoutCancel(ctx)); err != nil {
			f.e.log.Warn("detached job: output not yet stored; spool kept", "job", f.j.ID, "spool", f.att.Spool, "err", err)
			note := fmt.Sprintf("some output could not be stored; all of it is kept in the spool %s on %s", f.att.Spool, f.h.Key())
			res.Error = strings.TrimPrefix(res.Error+"; "+note, "; ")
		} else {
			res.AfterEnd = f.removeSpool
		}
	}
	f.log("detached job ended", "state", res.State, "exit_code", derefCode(res.ExitCode), "bytes", f.offset())
	return res
}

func verdictArg(v []string) string {
	if len(v) < 2 {
		return ""
	}
	return v[1]
}

func derefCode(c *int) any {
	if c == nil {
		return nil
	}
	return *c
}

// removeSpool removes the spool of a job whose output is stored and whose
// end is recorded (Result.AfterEnd). A failure is logged: the folder then
// shows up among the orphans.
func (f *follower) removeSpool(ctx context.Context) {
	if err := f.att.check(f.j.ID); err != nil {
		f.log("detached job: spool not removed", "err", err)
		return
	}
	c, err := f.e.pool.acquire(ctx, f.h)
	if err == nil {
		defer f.e.pool.release(c)
		var lines [][]string
		lines, err = execReport(ctx, c, removeScript, f.att.Spool)
		if err == nil && (len(lines) == 0 || lines[0][0] != "removed") {
			err = errors.New("rm -rf failed")
		}
	}
	if err != nil {
		f.e.log.Warn("detached job: spool not removed", "job", f.j.ID, "host", f.h.Key(), "spool", f.att.Spool, "err", err)
	}
}

// spoolWriter hands the follow channel's stdout to the task: it drops what
// comes before the nonce line (rc file noise), then counts every byte it
// hands over, so that the next follow resumes exactly after it.
type spoolWriter struct {
	f       *follower
	marker  []byte
	seen    bool
	head    []byte
	stopped bool // guarded by f.mu
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.stopped {
		return 0, errFollowStopped
	}
	if !w.seen {
		w.head = append(w.head, p...)
		i := bytes.Index(w.head, w.marker)
		if i < 0 {
			if keep := len(w.marker) - 1; len(w.head) > keep {
				w.head = append(w.head[:0], w.head[len(w.head)-keep:]...)
			}
			return n, nil
		}
		p, w.seen, w.head = w.head[i+len(w.marker):], true, nil
	}
	if len(p) > 0 {
		w.f.t.Write(p)
		w.f.off += int64(len(p))
	}
	return n, nil
}

// stop cuts the writer off: bytes that arrive later are not handed over (the
// next follow reads them again from the spool).
func (w *spoolWriter) stop() {
	w.f.mu.Lock()
	w.stopped = true
	w.f.mu.Unlock()
}
