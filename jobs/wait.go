package jobs

import (
	"context"
	"time"
)

// A waiter re-reads a job that another process runs, since only that
// process can wake it in memory: first after remotePollMin, then twice as
// long each time up to remotePoll. A short job run by the daemon for the CLI
// ends within milliseconds, and a read costs tens of microseconds; a long
// one is read four times a second.
const (
	remotePollMin = 2 * time.Millisecond
	remotePoll    = 250 * time.Millisecond
)

// WaitOptions says when Wait returns. It always returns when the job is
// final, and, unless told otherwise, when it waits for input.
type WaitOptions struct {
	// Timeout is the longest Wait blocks; zero returns at once.
	Timeout time.Duration
	// Offset, when not negative, makes Wait return as soon as the job's output
	// passes it.
	Offset int64
	// UntilFinal: only the job's end (or Offset, or the timeout) ends the
	// wait; waiting for input does not.
	UntilFinal bool
	// PromptAfter: waiting for input ends the wait only once the job's
	// output passed this offset: a prompt that came after input was sent,
	// not the one being answered. Zero counts any prompt.
	PromptAfter int64
	// Progress, if set, is called with the job at every change while waiting.
	Progress func(*Job)
}

// Wait blocks until the job is final, waits for input, its output passes
// opts.Offset, opts.Timeout passes or ctx ends (see WaitOptions), and returns
// the job then. A waiter changes nothing: giving up leaves the job running.
func (e *Engine) Wait(ctx context.Context, id string, opts WaitOptions) (*Job, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	deadline := time.NewTimer(max(opts.Timeout, 0))
	defer deadline.Stop()
	// Reads are quick and answer even for a caller that gave up: it learns
	// where the job stands.
	rctx := context.WithoutCancel(ctx)
	poll := remotePollMin
	for {
		j, next, err := e.waitOnce(ctx, rctx, id, opts, deadline.C, &poll)
		if j != nil || err != nil || !next {
			return j, err
		}
	}
}

// unrecordedEnd is why job j, not final in the store, ended here without its
// end being recorded.
func (e *Engine) unrecordedEnd(j *Job) error {
	if j.State.Final() {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.endErr[j.ID]
}

// waitOnce is one round of Wait: it returns the job when Wait is done, or
// next to look again. The watch entry it takes is released on return.
func (e *Engine) waitOnce(ctx, rctx context.Context, id string, opts WaitOptions, deadline <-chan time.Time, pollEvery *time.Duration) (*Job, bool, error) {
	w, done := e.watch.wait(id)
	defer done()
	j, err := e.store.Get(rctx, id)
	if err != nil {
		return nil, false, err
	}
	if err := e.unrecordedEnd(j); err != nil {
		// The store would show the job running for as long as the end
		// cannot be recorded: say so rather than wait for it.
		return nil, false, err
	}
	prompted := j.State == StateWaitingInput && !opts.UntilFinal && j.OutputBytes > opts.PromptAfter
	if j.State.Final() || prompted || (opts.Offset >= 0 && j.OutputBytes > opts.Offset) || opts.Timeout <= 0 {
		return j, false, nil
	}
	if opts.Progress != nil {
		opts.Progress(j)
	}
	var poll <-chan time.Time
	if j.Owner != e.cfg.Owner {
		t := time.NewTimer(*pollEvery)
		defer t.Stop()
		poll = t.C
		*pollEvery = min(2**pollEvery, remotePoll)
	}
	select {
	case <-w.c:
		if w.final != nil {
			// The job's end, as recorded: no need to read it back. A copy,
			// as every waiter gets its own row from a read.
			j := *w.final
			return &j, false, nil
		}
	case <-poll:
	case <-deadline:
		j, err := e.store.Get(rctx, id)
		return j, false, err
	case <-ctx.Done():
		// The caller gave up; the job goes on.
		j, err := e.store.Get(rctx, id)
		return j, false, err
	}
	return nil, true, nil
}
