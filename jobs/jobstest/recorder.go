package jobstest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

// CallKind names a Task method, as a Recorder logs it.
type CallKind string

const (
	CallWrite   CallKind = "Write"
	CallPrompt  CallKind = "Prompt"
	CallStarted CallKind = "Started"
	CallFlush   CallKind = "Flush"
	// CallReturned is not a Task method: MarkReturned logs it when Run
	// returned, so that the order of the other calls can be checked against
	// it.
	CallReturned CallKind = "Returned"
)

// Call is one logged call, in the order the Recorder saw them.
type Call struct {
	Kind CallKind
	N    int // bytes, for a Write
}

// Recorder is a jobs.Task for executor tests: it keeps the output, the
// prompts, the starts and the order of every call, and delivers controls the
// way the engine does (a buffered channel, never blocking the sender). It is
// safe for concurrent use: an executor may write from several goroutines.
type Recorder struct {
	controls chan jobs.Control
	changed  chan struct{} // signalled (non-blocking) on every call

	mu      sync.Mutex // protects the fields below
	out     bytes.Buffer
	calls   []Call
	starts  []jobs.Start
	prompts []*jobs.Prompt
	flushes int
}

var _ jobs.Task = (*Recorder)(nil)

// NewRecorder returns an empty Recorder whose controls channel holds 8, like
// the engine's.
func NewRecorder() *Recorder {
	return &Recorder{controls: make(chan jobs.Control, 8), changed: make(chan struct{}, 1)}
}

func (r *Recorder) log(c Call) {
	r.calls = append(r.calls, c)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Write implements jobs.Task.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Write(p)
	r.log(Call{Kind: CallWrite, N: len(p)})
	return len(p), nil
}

// Prompt implements jobs.Task.
func (r *Recorder) Prompt(p *jobs.Prompt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p != nil {
		cp := *p
		p = &cp
	}
	r.prompts = append(r.prompts, p)
	r.log(Call{Kind: CallPrompt})
}

// Started implements jobs.Task.
func (r *Recorder) Started(s jobs.Start) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, s)
	r.log(Call{Kind: CallStarted})
}

// Controls implements jobs.Task.
func (r *Recorder) Controls() <-chan jobs.Control { return r.controls }

// Flush implements jobs.Task. Everything is "stored" as it is written, so it
// only counts.
func (r *Recorder) Flush(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushes++
	r.log(Call{Kind: CallFlush})
	return nil
}

// MarkReturned logs that the executor's Run returned: calls logged after it
// came too late.
func (r *Recorder) MarkReturned() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log(Call{Kind: CallReturned})
}

// Send hands c to the executor as the engine does: without blocking. It
// reports false when the channel is full.
func (r *Recorder) Send(c jobs.Control) bool {
	select {
	case r.controls <- c:
		return true
	default:
		return false
	}
}

// Output is everything written so far.
func (r *Recorder) Output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// Calls is the log of calls so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Starts lists the Started calls so far.
func (r *Recorder) Starts() []jobs.Start {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jobs.Start(nil), r.starts...)
}

// Prompts lists the Prompt calls so far (nil for "output resumed").
func (r *Recorder) Prompts() []*jobs.Prompt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*jobs.Prompt(nil), r.prompts...)
}

// Flushes is how many times Flush was called.
func (r *Recorder) Flushes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushes
}

// WaitFor waits up to timeout for cond to hold, re-checking it on every call
// the executor makes (and every 50 ms, for conditions outside the Recorder).
func (r *Recorder) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.changed:
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// WaitOutput waits up to timeout for the output to contain s.
func (r *Recorder) WaitOutput(timeout time.Duration, s string) bool {
	return r.WaitFor(timeout, func() bool { return strings.Contains(r.Output(), s) })
}

// WaitStarted waits up to timeout for a Started call.
func (r *Recorder) WaitStarted(timeout time.Duration) bool {
	return r.WaitFor(timeout, func() bool { return len(r.Starts()) > 0 })
}

// WaitPrompt waits up to timeout for the job to wait for input, and returns
// its prompt.
func (r *Recorder) WaitPrompt(timeout time.Duration) *jobs.Prompt {
	var p *jobs.Prompt
	r.WaitFor(timeout, func() bool {
		ps := r.Prompts()
		if len(ps) > 0 && ps[len(ps)-1] != nil {
			p = ps[len(ps)-1]
		}
		return p != nil
	})
	return p
}
