package sessions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

var (
	_ jobs.Executor            = (*Executor)(nil)
	_ jobs.DestinationResolver = (*Executor)(nil)
	_ jobs.Reattacher          = (*Executor)(nil)
	_ jobs.Screener            = (*Executor)(nil)
)

// ExecutorConfig configures an Executor. Zero fields take defaults.
type ExecutorConfig struct {
	// SpoolDir is the folder on remote hosts under which detached jobs keep
	// their spools (one folder per job id). "~" or "~/..." is the remote
	// home, a relative path is taken from the home. Empty (the default)
	// means $XDG_CACHE_HOME/sshjobs, else ~/.cache/sshjobs, as the remote
	// shell sees them. It must be writable, but need not allow exec.
	SpoolDir string
	Logger   *slog.Logger // default: the pool's
}

// Executor runs jobs on a Pool's connections (jobs.Executor): a shell job in
// its named session's shell (sudo through our own nonce prompt), a detached
// job launched from that shell and followed apart from it (detach.go), and
// it re-attaches detached jobs after a restart (jobs.Reattacher). It resolves
// a job's target once, when the job is accepted (jobs.DestinationResolver).
// It holds no state of its own: the pool owns connections and shells.
type Executor struct {
	pool *Pool
	cfg  ExecutorConfig
	log  *slog.Logger
}

// Pool is the pool the executor runs jobs on.
func (e *Executor) Pool() *Pool { return e.pool }

// NewExecutor returns an executor over p.
func NewExecutor(p *Pool, cfg ExecutorConfig) *Executor {
	if cfg.Logger == nil {
		cfg.Logger = p.cfg.Logger
	}
	return &Executor{pool: p, cfg: cfg, log: cfg.Logger}
}

// ResolveDestination resolves target as `ssh target` would, once, when a job
// is accepted (jobs.DestinationResolver): the job's row keeps the whole
// destination, and the job runs there whatever ssh_config says later.
func (e *Executor) ResolveDestination(ctx context.Context, target string) (jobs.Destination, error) {
	h, err := e.pool.Resolve(ctx, target)
	if err != nil {
		return jobs.Destination{}, err
	}
	return jobs.Destination{Key: h.Key(), Spec: h.MarshalDestination()}, nil
}

// destination is the host j runs on: the destination stored on its row. A
// row from before destinations were stored is resolved again, and runs only
// if that lands where the row says; never somewhere else. (A job with no
// Host at all, from a caller that is not the engine, is resolved now.)
func (e *Executor) destination(ctx context.Context, j *jobs.Job) (*sshconfig.Host, error) {
	if j.Destination != "" {
		h, err := sshconfig.UnmarshalDestination(j.Destination)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w; not run", j.ID, err)
		}
		if h.Key() != j.Host {
			return nil, fmt.Errorf("job %s: its stored destination is %s, not %s as its row says; not run", j.ID, h.Key(), j.Host)
		}
		return h, nil
	}
	target := j.Target
	if target == "" {
		target = j.Host
	}
	h, err := e.pool.Resolve(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", j.ID, err)
	}
	if j.Host != "" && j.Host != h.Key() && j.Host != h.User+"@"+h.Addr() {
		return nil, fmt.Errorf("job %s was accepted for %s, but %q now resolves to %s (ssh_config or the environment changed); not run there", j.ID, j.Host, target, h.Key())
	}
	return h, nil
}

// Run runs j in its session's shell on its host and blocks until it ends
// (jobs.Executor). A connection or shell that cannot be had ends the job in
// state error; a connection that dies under it, lost. A detached job is
// launched from its session's shell and followed apart from it (detach.go).
func (e *Executor) Run(ctx context.Context, j *jobs.Job, t jobs.Task) jobs.Result {
	ctx = jobEnv(ctx, j)
	if j.Detached {
		return e.runDetached(ctx, j, t)
	}
	h, err := e.destination(ctx, j)
	if err != nil {
		return errorResult(err)
	}
	// Its screen is blank until its command is typed (screen.go).
	e.pool.screens.add(j.ID, screenPort{cols: cmp.Or(j.Cols, ptyCols), rows: cmp.Or(j.Rows, ptyRows)})
	defer e.pool.screens.remove(j.ID)
	// One retry, for a job that did not start: a connection that died quietly
	// since its last job (the keepalive has not noticed yet) fails at opening
	// a session, or the shell had exited before it read the job's line.
	res, retry := e.runOn(ctx, h, j, t)
	if retry {
		res, _ = e.runOn(ctx, h, j, t)
	}
	return res
}

// runOn runs j on the pool's connection to h. retry reports that the job did
// not start because the connection or the shell turned out dead.
func (e *Executor) runOn(ctx context.Context, h *sshconfig.Host, j *jobs.Job, t jobs.Task) (res jobs.Result, retry bool) {
	hold, res, retry := e.pool.holdSession(ctx, h, j)
	if hold == nil {
		return res, retry
	}
	c := hold.c
	t.Started(jobs.Start{NewShell: hold.newShell})

	out := hold.sh.runJob(ctx, e.jobRun(h, j), t)

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
		e.log.Info("the shell exited before the job began; running it on a new shell", "job", j.ID, "host", c.key, "session", j.Session)
		return out.Result, true
	}
	if out.shellGone && (out.State == jobs.StateLost || out.State == jobs.StateCancelled) {
		e.log.Info("job ended without its end marker", "job", j.ID, "host", c.key,
			"session", j.Session, "state", out.State, "error", out.Error)
	}
	return out.Result, false
}

// jobEnv is ctx with the environment of j's submitter (Job.Env, an
// *sshdial.Env when set) for the dials and secret lookups of its run.
func jobEnv(ctx context.Context, j *jobs.Job) context.Context {
	if env, ok := j.Env.(*sshdial.Env); ok {
		return sshdial.WithEnv(ctx, env)
	}
	return ctx
}

// connectErrorKind classifies a failure to connect: refused logins and host
// keys by their typed errors, anything else as the connection itself.
func connectErrorKind(err error) jobs.ErrorKind {
	var ae *sshdial.AuthError
	var he *sshdial.HostKeyError
	switch {
	case errors.As(err, &ae):
		return jobs.ErrorAuth
	case errors.As(err, &he):
		return jobs.ErrorHostKey
	}
	return jobs.ErrorConnect
}

func errorResult(err error) jobs.Result {
	return jobs.Result{State: jobs.StateError, Error: err.Error()}
}
