package jobs

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// ownerInfo is this process's owner row as of now.
func (e *Engine) ownerInfo(now time.Time) OwnerInfo {
	o := e.self
	o.Heartbeat = now
	return o
}

// ownerGone reports whether the owner o of running jobs whose lease expired
// is known to be gone, so that its running jobs may be taken:
//   - its row is missing: it stopped cleanly (Close removes the row);
//   - it ran on this kernel in this pid namespace (same boot id and
//     namespace in ProcStart): exactly when its pid is not alive or now
//     belongs to a process with another start time. A process that is
//     stopped (Ctrl-Z) or slow is alive and keeps its jobs however long;
//   - otherwise (another machine, another pid namespace, or a system where
//     ProcStart is unknown): its own heartbeat is older than OwnerGrace and,
//     when its hostname is ours and its start identity unknown, no process
//     has its pid. The remaining risk there is a pid recycled by an
//     unrelated process, which keeps the jobs running until it ends, and an
//     owner on another machine that misses its heartbeats for the whole
//     grace: its running jobs end lost, and its real end then replaces the
//     lost (Store.End) while a detached job it followed is left to the
//     adopter (checkOwned).
func (e *Engine) ownerGone(o OwnerInfo, now time.Time) bool {
	switch {
	case o.ID == e.cfg.Owner:
		return false
	case o.Heartbeat.IsZero():
		return true // no row
	}
	if alive, known := exactlyAlive(o.PID, o.ProcStart); known {
		return !alive
	}
	switch {
	case now.Sub(o.Heartbeat) < e.cfg.OwnerGrace:
		return false
	case o.Hostname == e.self.Hostname && o.ProcStart == "" && pidAlive(o.PID):
		return false
	}
	return true
}

// ownership is this process's claim on a job it runs. It is lost when
// another process took the job over (it took this one for gone): from then
// on this process writes nothing for the job and stops following it.
type ownership struct {
	cancel   context.CancelFunc // ends the executor's context for the job
	detached bool
	lost     atomic.Bool
}

// checkOwned runs after each heartbeat, with the sorted ids of the non-final
// jobs this process still owns: a running detached job missing from them was
// taken over by another process (shell jobs never are while they run here:
// they stay ours even when ended lost), and the input kept for a queued job
// that another process adopted, or that ended, is dropped.
func (e *Engine) checkOwned(active []string) {
	mine := func(id string) bool { _, ok := slices.BinarySearch(active, id); return ok }
	var followed, inputs []string
	e.mu.Lock()
	for id, o := range e.owned {
		if o.detached && !o.lost.Load() && !mine(id) {
			followed = append(followed, id)
		}
	}
	for id := range e.pending {
		if !mine(id) {
			inputs = append(inputs, id)
		}
	}
	e.mu.Unlock()
	// Not among the active jobs at the heartbeat: the store says why. A job
	// inserted after the heartbeat is ours and active; then it is kept.
	for _, id := range followed {
		if j, err := e.store.Get(e.ctx, id); err == nil && j.Owner != e.cfg.Owner {
			e.disown(id, j.Owner)
		}
	}
	for _, id := range inputs {
		j, err := e.store.Get(e.ctx, id)
		if err == nil && (j.Owner != e.cfg.Owner || j.State.Final()) {
			e.mu.Lock()
			delete(e.pending, id)
			e.mu.Unlock()
		}
	}
}

// disown stops this process's work on a job that owner took over.
func (e *Engine) disown(id, owner string) {
	e.mu.Lock()
	o := e.owned[id]
	e.mu.Unlock()
	if o == nil || o.lost.Swap(true) {
		return
	}
	e.log.Warn("another sshjobs process took over a job this one ran (this one missed its heartbeats); stopping work on it", "job", id, "owner", owner)
	o.cancel()
}

// ownedTask is the Task an executor gets: it writes nothing for a job this
// process no longer owns, and its Flush fails for such a job, so that the
// executor never removes what the new owner still needs (a spool).
type ownedTask struct {
	*task
	own *ownership
}

func (t *ownedTask) Write(p []byte) (int, error) {
	if t.own.lost.Load() {
		return len(p), nil // the new owner stores the output
	}
	return t.task.Write(p)
}

func (t *ownedTask) Prompt(p *Prompt) {
	if !t.own.lost.Load() {
		t.task.Prompt(p)
	}
}

func (t *ownedTask) Started(s Start) {
	if t.own.lost.Load() {
		s = Start{} // records nothing; still frees the session
	}
	t.task.Started(s)
}

// Flush stores the output written so far and, for a detached job, checks in
// the store that this process still owns it: whoever calls Flush is about to
// delete the remote copy of the output.
func (t *ownedTask) Flush(ctx context.Context) error {
	id := t.task.job.ID
	if t.own.lost.Load() {
		return fmt.Errorf("flush job %s: %w", id, ErrNotOwner)
	}
	if err := t.task.Flush(ctx); err != nil {
		return err
	}
	if !t.own.detached {
		return nil
	}
	e := t.task.e
	j, err := e.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("flush job %s: check its owner: %w", id, err)
	}
	if j.Owner != e.cfg.Owner {
		e.disown(id, j.Owner)
		return fmt.Errorf("flush job %s: now run by %s: %w", id, j.Owner, ErrNotOwner)
	}
	return nil
}

// OwnerGone reports whether the process that owns job j, not this one, is
// known to be gone: for a queued job its lease expired (its queued jobs are
// adopted then); for a running one, ownerGone says so. A process that only
// missed heartbeats (stopped, asleep, slow) is not gone.
func (e *Engine) OwnerGone(ctx context.Context, j *Job) (bool, error) {
	now := e.cfg.Now()
	switch {
	case j.Owner == e.cfg.Owner || j.State.Final() || now.Before(j.LeaseUntil):
		return false, nil
	case j.State == StateQueued:
		return true, nil
	}
	owners, err := e.store.ExpiredOwners(ctx, now)
	if err != nil {
		return false, fmt.Errorf("is the owner of job %s gone: %w", j.ID, err)
	}
	for _, o := range owners {
		if o.ID == j.Owner {
			return e.ownerGone(o, now), nil
		}
	}
	return false, nil
}
