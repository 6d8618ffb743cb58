package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// FileSession is the session name of file operations: they run beside the
// shells, not in one, and Claim ignores them (kind file), so a running file
// operation never holds up a session's commands.
const FileSession = "file"

// ErrNotStarted marks an inline operation's error that came before it could
// start (no connection, no authentication): the job ends error, not failed.
var ErrNotStarted = errors.New("did not start")

// InlineFunc runs an inline operation for job j (its destination resolved
// and stored) and returns the summary stored as the job's output. It must
// not put content or secrets in the summary: it goes to the database.
type InlineFunc func(ctx context.Context, j *Job) (summary string, err error)

// RunInline records an operation that the caller runs itself, now, rather
// than through a session's worker: a file operation. The job is inserted
// running (kind s.Kind, default file), fn runs, its summary becomes the
// job's output, and the job ends succeeded, failed (fn's error), error (an
// error wrapping ErrNotStarted), or cancelled (ctx ended, or ssh_cancel).
// It returns the final job and fn's error, or an error from the store
// (then fn did not run).
func (e *Engine) RunInline(ctx context.Context, s Spec, fn InlineFunc) (*Job, error) {
	if s.Kind == "" {
		s.Kind = KindFile
	}
	if s.Session == "" {
		s.Session = FileSession
	}
	j, err := e.newJob(ctx, s, StateRunning)
	if err != nil {
		return nil, err
	}
	// The operation ends with the request, with the engine, or by Cancel.
	opCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.ctx, func() { cancel(errors.New("sshjobs stopped while the operation ran")) })
	defer stop()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("sshjobs is shutting down")
	}
	e.inline[j.ID] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.inline, j.ID)
		e.mu.Unlock()
	}()
	if err := e.store.Insert(ctx, j); err != nil {
		return nil, fmt.Errorf("record file operation: %w", err)
	}
	e.watch.changed(j.ID)

	summary, runErr := e.runInlineSafely(opCtx, fn, j)
	state, msg := StateSucceeded, ""
	switch {
	case runErr == nil:
	case opCtx.Err() != nil:
		state, msg = StateCancelled, fmt.Sprintf("%v (%v)", runErr, context.Cause(opCtx))
	case errors.Is(runErr, ErrNotStarted):
		state, msg = StateError, runErr.Error()
	default:
		state, msg = StateFailed, runErr.Error()
	}
	// Recording must reach the store even when the request or the engine
	// ended.
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if summary != "" {
		chunk := Chunk{JobID: j.ID, Data: []byte(summary), At: e.cfg.Now()}
		if err := e.store.AppendOutput(rctx, []Chunk{chunk}, e.cfg.MaxJobOutput); err != nil {
			e.log.Error("store file operation summary", "job", j.ID, "err", err)
		}
	}
	end := e.cfg.Now()
	u := Update{Error: &msg, EndedAt: &end}
	if state == StateSucceeded || state == StateFailed {
		code := 0
		if state == StateFailed {
			code = 1
		}
		u.ExitCode = &code
	}
	final, err := e.store.End(rctx, j.ID, e.cfg.Owner, state, u)
	e.watch.changed(j.ID)
	if err != nil {
		e.log.Error("record end of file operation", "job", j.ID, "state", state, "err", err)
		j.State, j.Error, j.EndedAt = state, msg, end
		return j, runErr
	}
	return final, runErr
}

// runInlineSafely runs fn, turning a panic into its error (see runSafely).
func (e *Engine) runInlineSafely(ctx context.Context, fn InlineFunc, j *Job) (summary string, err error) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("file operation panicked", "job", j.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error in sshjobs (a bug; the stack is in the server's log): %v", r)
		}
	}()
	return fn(ctx, j)
}

// cancelInline stops an inline operation this process runs; false if it
// runs none by that id.
func (e *Engine) cancelInline(id string) bool {
	e.mu.Lock()
	cancel := e.inline[id]
	e.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel(errors.New("cancelled"))
	return true
}
