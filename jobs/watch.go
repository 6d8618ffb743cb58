package jobs

import "sync"

// watcher wakes, in memory, whoever waits on a job when its state or output
// changes. Waiters re-read the store after waking; nobody polls it.
type watcher struct {
	mu sync.Mutex // protects the field below
	ch map[string]chan struct{}
}

func newWatcher() *watcher { return &watcher{ch: map[string]chan struct{}{}} }

// wait returns a channel closed at the job's next change. Take it before
// reading the job, so that a change between the read and the wait is seen.
func (w *watcher) wait(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.ch[id]
	if c == nil {
		c = make(chan struct{})
		w.ch[id] = c
	}
	return c
}

// changed wakes the job's waiters.
func (w *watcher) changed(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.ch[id]; c != nil {
		close(c)
		delete(w.ch, id)
	}
}
