package jobs

import "sync"

// watcher wakes, in memory, whoever waits on a job when its state or output
// changes. Waiters re-read the store after waking; nobody polls it.
//
// An entry lives only while someone waits on the job: only the job's owner
// calls changed, so the entry of a job another process runs would otherwise
// never go.
type watcher struct {
	mu sync.Mutex // protects the field below
	ch map[string]*watch
}

type watch struct {
	c       chan struct{}
	waiters int
	// final is the job's row as its end was recorded, when that is the
	// change that closed c: a final row changes no more, so its waiters
	// need not read it again. Set before c is closed.
	final *Job
}

func newWatcher() *watcher { return &watcher{ch: map[string]*watch{}} }

// wait returns the watch whose channel c is closed at the job's next change,
// and done, which the caller calls once it no longer reads the channel. Take
// it before reading the job, so that a change between the read and the wait
// is seen.
func (w *watcher) wait(id string) (e *watch, done func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e = w.ch[id]
	if e == nil {
		e = &watch{c: make(chan struct{})}
		w.ch[id] = e
	}
	e.waiters++
	var once sync.Once
	return e, func() { once.Do(func() { w.release(id, e) }) }
}

// release drops a waiter of e; the last one removes e, unless a change
// replaced it already.
func (w *watcher) release(id string, e *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.waiters--; e.waiters == 0 && w.ch[id] == e {
		delete(w.ch, id)
	}
}

// changed wakes the job's waiters.
func (w *watcher) changed(id string) { w.ended(id, nil) }

// ended wakes the job's waiters with its final row (nil: read it), as
// committed by the end it records.
func (w *watcher) ended(id string, final *Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.ch[id]; e != nil {
		e.final = final
		close(e.c)
		delete(w.ch, id)
	}
}
