package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Signals a cancel may send.
var Signals = []string{"INT", "TERM", "KILL"}

// Cancel stops a job: a queued job never starts; a running one gets signal
// (default INT) and, if still alive after grace, its process group is killed.
// It waits up to grace plus a margin for the job to end and returns it. A
// job another process runs is marked for that process, which stops it at its
// next heartbeat. Cancelling a final job changes nothing.
func (e *Engine) Cancel(ctx context.Context, id, signal string, grace time.Duration) (*Job, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if signal == "" {
		signal = "INT"
	}
	signal = strings.TrimPrefix(strings.ToUpper(signal), "SIG")
	if !validSignal(signal) {
		return nil, fmt.Errorf("%w: signal %q: use INT, TERM or KILL", ErrBadInput, signal)
	}
	if grace < 0 {
		return nil, fmt.Errorf("%w: grace must not be negative", ErrBadInput)
	}

	j, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State == StateQueued {
		j2, err := e.cancelQueued(ctx, id)
		if err == nil {
			return j2, nil
		}
		if !errors.Is(err, ErrTransition) {
			return nil, err
		}
		// It started meanwhile: cancel it as a running job.
		if j, err = e.store.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	if j.State.Final() {
		return j, nil
	}

	if e.cancelInline(id) {
		// A file operation of this process: it stops at its next read or write.
	} else if t := e.taskFor(ctx, j); t != nil {
		t.setCancelReason("cancelled with signal " + signal)
		t.control(Control{Signal: signal, Grace: grace})
	} else if _, err := e.store.RequestCancel(ctx, id); err != nil {
		return nil, err
	}
	return e.Wait(ctx, id, WaitOptions{Timeout: grace + 2*time.Second + e.cfg.Heartbeat, Offset: -1, UntilFinal: true})
}

// cancelQueued ends a job that has not started, so that it never does. It
// fails with ErrTransition when the job started meanwhile.
func (e *Engine) cancelQueued(ctx context.Context, id string) (*Job, error) {
	now := e.cfg.Now()
	reason := "cancelled before it started"
	j, err := e.store.CancelQueued(ctx, id, Update{Error: &reason, EndedAt: &now})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	delete(e.pending, id)
	e.mu.Unlock()
	e.watch.changed(id)
	return j, nil
}

func validSignal(s string) bool { return slices.Contains(Signals, s) }

// Input writes text to a running job's terminal. A secret is never stored or
// logged.
func (e *Engine) Input(ctx context.Context, id string, text []byte, secret bool) error {
	if err := validID(id); err != nil {
		return err
	}
	if len(text) == 0 {
		return fmt.Errorf("%w: text is empty", ErrBadInput)
	}
	j, err := e.store.Get(ctx, id)
	if err != nil {
		return err
	}
	t := e.taskFor(ctx, j)
	if t == nil {
		if j, err = e.store.Get(ctx, id); err != nil { // it may have ended meanwhile
			return err
		}
		if j.State.Final() || j.State == StateQueued {
			return fmt.Errorf("%w: job %s is %s: input goes only to a running job", ErrBadInput, id, j.State)
		}
		return fmt.Errorf("%w: job %s runs in another sshjobs process (%s): send input through that one", ErrBadInput, id, j.Owner)
	}
	done := make(chan error, 1)
	if !t.control(Control{Input: text, Secret: secret, Done: done}) {
		return fmt.Errorf("%w: job %s is not accepting input (ended or busy)", ErrBadInput, id)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("input to job %s: %w", id, err)
		}
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("input to job %s: the executor did not take it within 5s", id)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// taskFor returns the task of a job this engine runs. A job is running in
// the store a moment before its task is registered here: for a job of ours
// that is not final, it waits for that moment.
func (e *Engine) taskFor(ctx context.Context, j *Job) *task {
	for range 200 {
		e.mu.Lock()
		t := e.running[j.ID]
		e.mu.Unlock()
		if t != nil || j.Owner != e.cfg.Owner || j.State == StateQueued || j.State.Final() {
			return t
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
