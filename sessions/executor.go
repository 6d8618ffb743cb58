package sessions

import (
	"context"
	"fmt"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

var _ jobs.Executor = (*Pool)(nil)

// Run runs j in its session's shell on its host and blocks until it ends
// (jobs.Executor). A connection or shell that cannot be had ends the job in
// state error; a connection that dies under it, lost. A detached job is
// launched from its session's shell and followed apart from it (detach.go).
func (p *Pool) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	if j.Detached {
		return p.runDetached(ctx, j, t)
	}
	target := j.Target
	if target == "" {
		target = j.Host
	}
	h, err := p.Resolve(ctx, target)
	if err != nil {
		return errorResult(fmt.Errorf("job %s: %w", j.ID, err))
	}
	// One retry, for a job that did not start: a connection that died quietly
	// since its last job (the keepalive has not noticed yet) fails at opening
	// a session, or the shell had exited before it read the job's line.
	res, retry := p.runOn(ctx, h, j, t)
	if retry {
		res, _ = p.runOn(ctx, h, j, t)
	}
	return res
}

// runOn runs j on the pool's connection to h. retry reports that the job did
// not start because the connection or the shell turned out dead.
func (p *Pool) runOn(ctx context.Context, h *Host, j *jobs.Job, t jobs.Task) (res jobs.Result, retry bool) {
	hold, res, retry := p.holdSession(ctx, h, j)
	if hold == nil {
		return res, retry
	}
	c := hold.c
	t.Started(jobs.Start{NewShell: hold.newShell})

	out := hold.sh.runJob(ctx, p.jobRun(h, j), t)

	if out.connLost || !c.alive() && out.shellGone {
		// The shell's output ended without an exit status: wait for the
		// connection's own verdict, which carries the reason.
		select {
		case <-c.dead:
			out.Error = c.lostMessage()
		case <-time.After(exitStatusWait):
			out.Error = fmt.Sprintf("the session's channel to %s closed without an exit status; the next command gets a new shell", c.key)
		}
	}
	hold.done(out.shellGone)
	if out.notRun {
		p.cfg.Logger.Info("the shell exited before the job began; running it on a new shell", "job", j.ID, "host", c.key, "session", j.Session)
		return out.Result, true
	}
	if out.State == jobs.StateLost || out.State == jobs.StateCancelled {
		p.cfg.Logger.Info("job ended without its end marker", "job", j.ID, "host", c.key,
			"session", j.Session, "state", out.State, "error", out.Error)
	}
	return out.Result, false
}

func errorResult(err error) jobs.Result {
	return jobs.Result{State: jobs.StateError, Error: err.Error()}
}
