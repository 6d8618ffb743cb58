package sessions

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// killRetry is how soon a KILL escalation that could not be sent is tried
// again on a live connection.
const killRetry = time.Second

// signalResult is what signalScript reported.
type signalResult string

const (
	signalSent     signalResult = "sent"     // delivered to the job's group (or pid)
	signalGone     signalResult = "gone"     // the process already ended
	signalRecycled signalResult = "recycled" // the pid is another process now: nothing sent
	signalFailed   signalResult = "failed"   // kill failed (permissions?)
)

// signalDetached sends sig (INT, TERM, KILL) to the detached job described by
// att over an exec channel of c, after checking on the remote host that its
// pid still is the process that was started (same start identity).
func signalDetached(ctx context.Context, c *conn, att attachInfo, sig string) (signalResult, error) {
	lines, err := execReport(ctx, c, signalScript, strconv.Itoa(att.PID), strconv.Itoa(att.PGID), att.Start, sig)
	if err != nil {
		return "", fmt.Errorf("signal %s to pid %d: %w", sig, att.PID, err)
	}
	if len(lines) == 0 || len(lines[0]) == 0 {
		return "", fmt.Errorf("signal %s to pid %d on %s: no report", sig, att.PID, c.key)
	}
	return signalResult(lines[0][0]), nil
}

// deliver carries out a cancel control on connection c: the signal goes to
// the job's process group, and a KILL follows after the control's grace
// (jobs.Control). done is true when the job's end is decided here.
func (f *follower) deliver(ctx context.Context, c *conn, ctl jobs.Control) (jobs.Result, bool) {
	r, err := signalDetached(ctx, c, f.att, ctl.Signal)
	if err != nil {
		if !c.alive() {
			// The next connection delivers it.
			f.pending = append(f.pending, ctl)
			return jobs.Result{}, false
		}
		f.e.log.Warn("detached job: cancel not delivered", "job", f.j.ID, "host", f.h.Key(), "err", err)
		if ctl.Done == nil && ctl.Signal == "KILL" {
			f.graceC = time.After(killRetry)
		}
		reply(ctl.Done, fmt.Errorf("job %s: %w", f.j.ID, err))
		return jobs.Result{}, false
	}
	f.log("detached job signalled", "signal", ctl.Signal, "pid", f.att.PID, "pgid", f.att.PGID, "result", r)
	switch r {
	case signalSent:
		f.signal = ctl.Signal
		f.graceC, f.graceEnd = nil, time.Now()
		if ctl.Signal != "KILL" {
			grace := graceOf(ctl)
			f.graceC, f.graceEnd = time.After(grace), time.Now().Add(grace)
		}
		reply(ctl.Done, nil)
	case signalGone:
		// It ended meanwhile: the follow reports how.
		reply(ctl.Done, nil)
	case signalRecycled:
		// The job's own process is gone and its pid now runs something
		// else, which must not be touched. The follow sees it gone too, and
		// ends the job once the rest of the output is in (lost, with this
		// note; or with its code, had it written one).
		f.recycled = fmt.Sprintf("the detached job's pid %d on %s now belongs to another process (its start time differs), so the cancel signalled nothing; the job's own process is gone",
			f.att.PID, f.h.Key())
		reply(ctl.Done, fmt.Errorf("job %s: %s", f.j.ID, f.recycled))
	default:
		reply(ctl.Done, fmt.Errorf("job %s: kill -%s of pid %d on %s failed", f.j.ID, ctl.Signal, f.att.PID, f.h.Key()))
	}
	return jobs.Result{}, false
}

// drainGroup makes sure that a cancelled job leaves nothing behind in its
// process group: the job's own process ended (the follow saw it), but a
// background child that ignores INT may live on. It waits for the group to
// empty until the grace period ends, then kills what is left. It reports
// whether it had to.
func (f *follower) drainGroup(ctx context.Context, c *conn) (killed bool) {
	if f.att.PGID != f.att.PID || f.att.PGID <= 1 {
		return false // not a group of its own: nothing to sweep safely
	}
	pg := strconv.Itoa(f.att.PGID)
	for {
		sig := "0"
		if !time.Now().Before(f.graceEnd) {
			sig = "KILL"
		}
		lines, err := execReport(ctx, c, groupScript, pg, sig)
		if err != nil {
			f.e.log.Warn("detached job: cannot check its process group", "job", f.j.ID, "host", f.h.Key(), "pgid", f.att.PGID, "err", err)
			return false
		}
		if len(lines) == 0 || lines[0][0] != "alive" || sig == "KILL" {
			return sig == "KILL" && len(lines) > 0 && lines[0][0] == "alive"
		}
		select {
		case <-time.After(min(200*time.Millisecond, time.Until(f.graceEnd))):
		case <-ctx.Done():
			return false
		}
	}
}
