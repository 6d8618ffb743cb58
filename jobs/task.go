package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// task implements Task for one running job.
type task struct {
	e        *Engine
	job      *Job
	controls chan Control
	// launched is closed when the executor reports the job started, or when
	// the job ends: a detached job's session is free from then on.
	launched     chan struct{}
	launchedOnce sync.Once

	mu       sync.Mutex // protects the fields below
	offset   int64      // where the next Write lands
	prompted bool       // the job is in waiting_input
	reason   string     // why it was cancelled
	closed   bool
}

func newTask(e *Engine, j *Job) *task {
	return &task{e: e, job: j, offset: j.OutputBytes, controls: make(chan Control, 8), launched: make(chan struct{})}
}

func (t *task) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	t.mu.Lock()
	off := t.offset
	t.offset += int64(len(p))
	resumed := t.prompted
	t.prompted = false
	t.mu.Unlock()
	if resumed {
		// Output resumed: the job is running again before its new output
		// counts, so that nobody sees a stale prompt with fresh output.
		t.transition(StateRunning, Update{ClearPrompt: true})
	}
	t.e.out.append(t.job.ID, off, p)
	return len(p), nil
}

func (t *task) Prompt(p *Prompt) {
	t.mu.Lock()
	if t.closed || (p == nil && !t.prompted) {
		t.mu.Unlock()
		return
	}
	t.prompted = p != nil
	t.mu.Unlock()
	if p == nil {
		t.transition(StateRunning, Update{ClearPrompt: true})
		return
	}
	// The prompt's text must be readable when a waiter wakes on the state.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := t.e.out.flush(ctx); err != nil {
		t.e.log.Warn("flush output before prompt", "job", t.job.ID, "err", err)
	}
	t.transition(StateWaitingInput, Update{Prompt: p})
}

func (t *task) transition(to State, u Update) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := t.e.store.Transition(ctx, t.job.ID, to, u); err != nil {
		t.e.log.Warn("record prompt", "job", t.job.ID, "state", to, "err", err)
	}
	t.e.watch.changed(t.job.ID)
}

func (t *task) Started(s Start) {
	defer t.launchedOnce.Do(func() { close(t.launched) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.NewShell && !t.sessionRanBefore(ctx) {
		s.NewShell = false // the session's first shell: nothing was reset
	}
	if !s.NewShell && s.Attach == "" {
		return // nothing to record: new_shell is false until said otherwise
	}
	u := Update{NewShell: &s.NewShell}
	if s.Attach != "" {
		u.Attach = &s.Attach
	}
	if err := t.e.store.Set(ctx, t.job.ID, u); err != nil {
		t.e.log.Warn("record job start", "job", t.job.ID, "err", err)
	}
}

// sessionRanBefore reports whether the job's session ran an earlier job (in
// this process or another): only then does a new shell mean that its cwd and
// environment were reset.
func (t *task) sessionRanBefore(ctx context.Context) bool {
	// Newest first: jobs queued after this one come first, then this one,
	// then the earlier ones. Ids are UUIDv7, ordered by creation even within
	// one millisecond.
	js, err := t.e.store.List(ctx, ListFilter{Host: t.job.Host, Session: t.job.Session, Limit: MaxListLimit})
	if err != nil {
		return true // say "reset" rather than hide one
	}
	for _, j := range js {
		if j.ID < t.job.ID && j.State != StateQueued && j.State != StateError {
			return true
		}
	}
	return false
}

func (t *task) Controls() <-chan Control { return t.controls }

// Flush fails when any of the job's output is not stored, even if later
// output was: the caller may hold the only other copy (a detached job's spool).
func (t *task) Flush(ctx context.Context) error {
	if err := t.e.out.flush(ctx); err != nil {
		return fmt.Errorf("flush output of job %s: %w", t.job.ID, err)
	}
	return t.e.out.jobErr(t.job.ID)
}

// control delivers c to the executor, or reports that the job has ended.
func (t *task) control(c Control) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	select {
	case t.controls <- c:
		return true
	default:
		// The executor is not draining controls: a stuck job. Drop the newest
		// rather than block a tool call.
		return false
	}
}

func (t *task) setCancelReason(r string) {
	t.mu.Lock()
	if t.reason == "" {
		t.reason = r
	}
	t.mu.Unlock()
}

func (t *task) cancelReason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

// close marks the task ended: later controls are refused.
func (t *task) close() {
	t.launchedOnce.Do(func() { close(t.launched) })
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}
