package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// worker runs the queued jobs of one session, one at a time, oldest first.
// It exists while the session has queued jobs of this engine.
type worker struct {
	kick chan struct{} // buffered 1: "look for queued jobs again"
}

// kick makes sure a worker for the session exists and looks for queued jobs.
func (e *Engine) kick(k sessionKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	w := e.workers[k]
	if w == nil {
		w = &worker{kick: make(chan struct{}, 1)}
		e.workers[k] = w
		e.wg.Add(1)
		go func() { defer e.wg.Done(); e.runWorker(k, w, nil) }()
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// startingWorker registers a worker for session k, to be started with
// startWorker, if want and the session has none; else it returns nil. Kicks
// meanwhile wait for it in its channel.
func (e *Engine) startingWorker(k sessionKey, want bool) *worker {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !want || e.closed || e.workers[k] != nil {
		return nil
	}
	w := &worker{kick: make(chan struct{}, 1)}
	e.workers[k] = w
	e.wg.Add(1)
	return w
}

// startWorker starts w (from startingWorker), with the job first when not
// nil: stored claimed, to run before any other.
func (e *Engine) startWorker(k sessionKey, w *worker, first *Job) {
	go func() { defer e.wg.Done(); e.runWorker(k, w, first) }()
}

func (e *Engine) runWorker(k sessionKey, w *worker, first *Job) {
	if first != nil {
		// Stored running before Enqueue returned: no waiter has to be told.
		e.runClaimed(newTask(e, first))
		// Nothing was queued when first was stored: whatever came since
		// kicked.
		e.mu.Lock()
		select {
		case <-w.kick:
			e.mu.Unlock()
		default:
			delete(e.workers, k)
			e.mu.Unlock()
			return
		}
	}
	for {
		// This round's claims see every job whose kick came so far (each is
		// stored before its kick): only a kick after this asks for another
		// round, not the one that started the worker.
		select {
		case <-w.kick:
		default:
		}
		e.runQueued(k)
		// Exit when idle, unless a kick arrived meanwhile; kick holds e.mu
		// while it sends, so none is lost.
		e.mu.Lock()
		select {
		case <-w.kick:
			e.mu.Unlock()
			continue
		default:
		}
		delete(e.workers, k)
		e.mu.Unlock()
		return
	}
}

// runQueued claims and runs the session's queued jobs until none is left.
func (e *Engine) runQueued(k sessionKey) {
	for e.ctx.Err() == nil {
		now := e.cfg.Now()
		j, err := e.store.Claim(e.ctx, e.cfg.Owner, k.host, k.session, now, now.Add(e.cfg.Lease))
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Error("claim job", "host", k.host, "session", k.session, "err", err)
			}
			return
		}
		if j == nil {
			return
		}
		e.watch.changed(j.ID)
		if j.Detached {
			// A detached job holds its session only while it is launched from
			// the session's shell; then it is followed on its own goroutine and
			// the next job may run.
			t := newTask(e, j)
			e.wg.Add(1)
			go func() { defer e.wg.Done(); e.runClaimed(t) }()
			select {
			case <-t.launched:
			case <-e.ctx.Done():
			}
			continue
		}
		e.runClaimed(newTask(e, j))
	}
}

// runClaimed runs a job this engine has just claimed, unless the engine is
// stopping: then the job has not started anywhere, and it goes back to the
// queue, for the next process to run. (A job submitted as the engine
// closed used to end lost without having run.)
func (e *Engine) runClaimed(t *task) {
	if e.ctx.Err() == nil {
		e.runTask(t, e.exec.Run)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.Requeue(ctx, t.job.ID, e.cfg.Owner); err != nil {
		// Still running for this owner: the next process ends it lost.
		e.log.Warn("give a job not started back to the queue", "job", t.job.ID, "err", err)
	} else {
		e.log.Info("stopping: job not started, left queued for the next process", "job", t.job.ID)
	}
	e.mu.Lock()
	delete(e.pending, t.job.ID)
	e.mu.Unlock()
	t.close()
	e.watch.changed(t.job.ID)
}

// runTask runs a claimed job through runFn (the executor's Run or Reattach)
// and records how it ended once all its output is committed.
func (e *Engine) runTask(t *task, runFn func(context.Context, *Job, Task) Result) {
	j := t.job
	// The task's own context ends also when another process takes the job
	// over (disown): this process then stops following it.
	ctx, cancel := context.WithCancel(e.ctx)
	own := &ownership{cancel: cancel, detached: j.Detached}
	e.mu.Lock()
	e.running[j.ID] = t
	e.owned[j.ID] = own
	p, ok := e.pending[j.ID]
	delete(e.pending, j.ID)
	e.mu.Unlock()
	if ok {
		j.Env, j.Cols, j.Rows = p.env, p.cols, p.rows
	}
	if p.input != nil {
		t.control(Control{Input: p.input})
	}
	defer func() {
		e.mu.Lock()
		delete(e.running, j.ID)
		delete(e.owned, j.ID)
		e.mu.Unlock()
		cancel()
	}()

	var killTimer *time.Timer
	if j.KillAfter > 0 {
		left := j.KillAfter - j.Duration(e.cfg.Now())
		killTimer = time.AfterFunc(max(left, 0), func() {
			t.setCancelReason(fmt.Sprintf("stopped by kill_after_s=%g", j.KillAfter.Seconds()))
			t.control(Control{Signal: "INT", Grace: e.cfg.CancelGrace})
		})
	}
	res := e.runSafely(ctx, runFn, j, &ownedTask{task: t, own: own})
	if killTimer != nil {
		killTimer.Stop()
	}
	e.finish(j, t, own, res)
}

// runSafely runs the executor, turning a panic into the job's error: one
// broken job must not take the server and every other job down with it.
func (e *Engine) runSafely(ctx context.Context, runFn func(context.Context, *Job, Task) Result, j *Job, t Task) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("executor panicked", "job", j.ID, "panic", r, "stack", string(debug.Stack()))
			res = Result{State: StateError, ErrorKind: ErrorInternal, Error: fmt.Sprintf("internal error in sshjobs (a bug; the stack is in the server's log): %v", r)}
		}
	}()
	return runFn(ctx, j, t)
}

// Backoff between attempts to record the end of a job.
const (
	endRetryMin = 100 * time.Millisecond
	endRetryMax = 30 * time.Second
)

// finish commits the job's output, then its final state, so that whoever
// sees the final state reads all of the output. An end that cannot be
// recorded (the disk full, the database locked) is retried while the engine
// runs, and waiters are told meanwhile.
func (e *Engine) finish(j *Job, t *task, own *ownership, res Result) {
	t.close()
	// The engine's context may be done (shutdown): finishing must still reach
	// the store.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := e.out.flush(ctx)
	cancel()
	if err != nil {
		e.log.Error("flush output", "job", j.ID, "err", err)
	}
	if own.lost.Load() {
		// Another process runs the job now and records its end.
		e.log.Warn("stopped following a job another sshjobs process took over", "job", j.ID)
		e.watch.changed(j.ID)
		return
	}
	if !res.State.Final() && j.Detached && e.ctx.Err() != nil {
		// The engine stops, the job goes on remotely: its lease runs out and
		// the next process re-attaches it.
		e.log.Info("left detached job running", "job", j.ID)
		e.watch.changed(j.ID)
		return
	}
	if !res.State.Final() {
		res.State, res.Error = StateLost, fmt.Sprintf("executor returned non-final state %q: %s", res.State, res.Error)
	}
	if res.State == StateCancelled && res.Error == "" {
		res.Error = t.cancelReason()
	}
	if e.ctx.Err() != nil && res.State == StateLost && res.Error == "" {
		res.Error = "sshjobs stopped while the job ran"
	}
	now := e.cfg.Now()
	// Signal and Error are always set: the real end replaces a lost end
	// (and its reason) recorded by a process that took this one for gone.
	u := Update{ExitCode: res.ExitCode, Signal: &res.Signal, Error: &res.Error, ErrorKind: &res.ErrorKind, EndedAt: &now, ClearPrompt: true}
	if res.Cwd != "" {
		u.Cwd = &res.Cwd
	}
	// Its waiters get the final row the end recorded (nil: they read it).
	var final *Job
	defer func() { e.watch.ended(j.ID, final) }()
	for delay := endRetryMin; ; delay = min(2*delay, endRetryMax) {
		var err error
		final, err = e.recordEnd(j.ID, res.State, u)
		if err == nil && res.AfterEnd != nil {
			e.afterEnd(j.ID, res.AfterEnd)
		}
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTransition) || errors.Is(err, ErrNotOwner) {
			switch {
			case errors.Is(err, ErrNotOwner):
				e.log.Warn("job taken over by another sshjobs process: its end is theirs to record", "job", j.ID, "state", res.State, "err", err)
			case err != nil:
				e.log.Error("record end of job", "job", j.ID, "state", res.State, "err", err)
			}
			e.setEndErr(j.ID, nil)
			e.out.forget(j.ID)
			return
		}
		err = fmt.Errorf("job %s ended %s but its end could not be recorded (retrying while sshjobs runs): %w", j.ID, res.State, err)
		e.log.Error("record end of job", "job", j.ID, "err", err)
		e.setEndErr(j.ID, err)
		e.watch.changed(j.ID)
		select {
		case <-time.After(delay):
		case <-e.ctx.Done():
			// The row stays as it is: the job's lease runs out and the next
			// process that adopts it decides its end.
			e.log.Error("end of job not recorded before sshjobs stopped", "job", j.ID, "state", res.State)
			return
		}
	}
}

// afterEnd runs a job's Result.AfterEnd, bounded in time, turning a panic
// into a log line as runSafely does.
func (e *Engine) afterEnd(id string, fn func(context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			e.log.Error("cleanup after a job's end panicked", "job", id, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(ctx)
}

// recordEnd records the end of job id once all of its output is stored or
// recorded as lost.
func (e *Engine) recordEnd(id string, state State, u Update) (*Job, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.out.flush(ctx); err != nil {
		return nil, err
	}
	if n := e.out.unrecordedBytes(id); n > 0 {
		return nil, fmt.Errorf("%d bytes of lost output not yet recorded: %w", n, e.out.jobErr(id))
	}
	return e.store.End(ctx, id, e.cfg.Owner, state, u)
}

// setEndErr records (nil: forgets) why the end of job id is not recorded.
func (e *Engine) setEndErr(id string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		delete(e.endErr, id)
	} else {
		e.endErr[id] = err
	}
}
