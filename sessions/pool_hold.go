package sessions

import (
	"context"
	"fmt"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// sessionHold is one job's hold on its session: the pooled connection (so it
// does not close as idle), the session's slot (locked: one job at a time) and
// the session's shell.
type sessionHold struct {
	p        *Pool
	c        *conn
	s        *slot
	sh       session
	newShell bool
}

// holdSession acquires the connection to h, locks j's session and gets its
// shell, starting one if need be. A failure comes as the job's result, with
// retry when the job did not start because the connection turned out dead:
// it may go to a fresh connection. After a success the caller calls done.
func (p *Pool) holdSession(ctx context.Context, h *sshconfig.Host, j *jobs.Job) (hold *sessionHold, res jobs.Result, retry bool) {
	c, err := p.acquire(ctx, h)
	if err != nil {
		if ctx.Err() != nil {
			return nil, jobs.Result{State: jobs.StateLost, Error: msgShutdown}, false
		}
		res := errorResult(fmt.Errorf("job %s: connect %s: %w", j.ID, h.Key(), err))
		res.ErrorKind = connectErrorKind(err)
		return nil, res, false
	}
	s := c.slot(j.Session)
	if !s.run.TryLock() {
		// The engine runs one job at a time per session; this is a guard.
		p.mu.Lock()
		busy := s.busyJob
		p.mu.Unlock()
		p.release(c)
		return nil, errorResult(fmt.Errorf("job %s: session %q on %s is busy with job %s", j.ID, j.Session, c.key, busy)), false
	}
	sh, newShell, err := c.shellFor(ctx, s)
	if err != nil {
		s.run.Unlock()
		p.release(c)
		if ctx.Err() != nil {
			return nil, jobs.Result{State: jobs.StateLost, Error: msgShutdown}, false
		}
		if !c.alive() || c.ping(5*time.Second) != nil {
			c.fail(fmt.Errorf("opening a session failed: %w", err))
			return nil, errorResult(fmt.Errorf("job %s: %w", j.ID, err)), true
		}
		return nil, errorResult(fmt.Errorf("job %s: %w", j.ID, err)), false
	}
	p.mu.Lock()
	s.busyJob = j.ID
	p.mu.Unlock()
	return &sessionHold{p: p, c: c, s: s, sh: sh, newShell: newShell}, jobs.Result{}, false
}

// done ends the hold. shellGone drops the session's shell; otherwise the
// session keeps the shell's cwd.
func (hd *sessionHold) done(shellGone bool) {
	p, s := hd.p, hd.s
	p.mu.Lock()
	s.busyJob = ""
	if !shellGone {
		s.cwd = hd.sh.where()
	} else if s.sh == hd.sh {
		s.sh = nil
	}
	p.mu.Unlock()
	s.run.Unlock()
	p.release(hd.c)
}
