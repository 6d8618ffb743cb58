package jobs

// Sizes of the engine's in-memory maps, for the tests that show they are
// bounded by what this process runs.

func (e *Engine) WatchedJobs() int {
	e.watch.mu.Lock()
	defer e.watch.mu.Unlock()
	return len(e.watch.ch)
}

func (e *Engine) PendingInputs() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

// Stopping reports whether Close has begun: the engine's context is done.
func (e *Engine) Stopping() bool { return e.ctx.Err() != nil }
