package jobs

import (
	"context"
	"fmt"
	"time"
)

// adopt takes over the non-final jobs of processes that stopped: queued jobs
// whose lease expired are run (or end lost when too old); running jobs are
// taken only from an owner known to be gone (ownerGone): detached ones are
// re-attached when the executor can, and the others end lost (their shell
// died with the process that held it), keeping their owner so that it alone
// may still record their real end should it be alive after all (Store.End).
func (e *Engine) adopt(ctx context.Context) error {
	now := e.cfg.Now()
	owners, err := e.store.ExpiredOwners(ctx, now)
	if err != nil {
		return fmt.Errorf("adopt jobs of stopped processes: %w", err)
	}
	var gone []OwnerInfo
	for _, o := range owners {
		if e.ownerGone(o, now) {
			gone = append(gone, o)
		}
	}
	reattacher, _ := e.exec.(Reattacher)
	taken, orphans, err := e.store.Adopt(ctx, e.cfg.Owner, AdoptOptions{
		Now: now, LeaseUntil: now.Add(e.cfg.Lease),
		Gone: gone, Reattach: reattacher != nil,
	})
	if err != nil {
		return fmt.Errorf("adopt jobs of stopped processes: %w", err)
	}
	for _, j := range taken {
		e.mu.Lock()
		_, ours := e.running[j.ID]
		e.mu.Unlock()
		switch {
		case ours:
			// Our own lease lapsed (the machine slept): the job still runs here.
		case j.State != StateQueued:
			// A detached job of a gone owner (Adopt takes no other running
			// job): it runs on the remote whatever happened here. Follow it
			// again, and deliver a cancel that was asked for meanwhile.
			e.log.Info("re-attaching detached job", "job", j.ID)
			t := newTask(e, j)
			if j.CancelRequested {
				t.setCancelReason("cancelled while its server was stopped")
				t.control(Control{Signal: "INT", Grace: e.cfg.CancelGrace})
			}
			e.wg.Add(1)
			go func() { defer e.wg.Done(); e.runTask(t, reattacher.Reattach) }()
		case j.CancelRequested:
			e.end(ctx, j, StateCancelled, "cancelled while its server was stopped")
		case now.Sub(j.CreatedAt) > e.cfg.QueuedMaxAge:
			e.end(ctx, j, StateLost, fmt.Sprintf("queued for %s when its server stopped; not started (limit %s)", now.Sub(j.CreatedAt).Round(time.Second), e.cfg.QueuedMaxAge))
		default:
			e.log.Info("adopted queued job", "job", j.ID)
		}
	}
	for _, j := range orphans {
		if j.CancelRequested {
			e.end(ctx, j, StateCancelled, "cancelled while its server was stopped")
			continue
		}
		e.log.Warn("ending job of a stopped sshjobs process lost", "job", j.ID, "owner", j.Owner)
		e.end(ctx, j, StateLost, "the sshjobs process running it ("+j.Owner+") stopped; the output up to then is kept")
	}
	sessions, err := e.store.QueuedSessions(ctx, e.cfg.Owner)
	if err != nil {
		return fmt.Errorf("list queued sessions: %w", err)
	}
	for _, s := range sessions {
		e.kick(sessionKey{s[0], s[1]})
	}
	return nil
}

// end moves a job that is not running here to a final state.
func (e *Engine) end(ctx context.Context, j *Job, s State, reason string) {
	now := e.cfg.Now()
	if _, err := e.store.Transition(ctx, j.ID, s, Update{Error: &reason, EndedAt: &now, ClearPrompt: true}); err != nil {
		// ErrTransition: another process, or the owner, ended it first.
		e.log.Warn("end adopted job", "job", j.ID, "state", s, "err", err)
	}
	e.watch.changed(j.ID)
}

// heartbeatLoop renews this process's leases, carries out cancel requests
// from other processes, adopts jobs of processes that died meanwhile, and
// prunes old jobs.
func (e *Engine) heartbeatLoop() {
	beat := time.NewTicker(e.cfg.Heartbeat)
	defer beat.Stop()
	lastAdopt, lastPrune := e.cfg.Now(), e.cfg.Now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-beat.C:
		}
		now := e.cfg.Now()
		beat, err := e.store.Heartbeat(e.ctx, e.ownerInfo(now), now.Add(e.cfg.Lease))
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Error("renew leases", "err", err)
			}
			continue
		}
		for _, id := range beat.Cancel {
			e.cancelRequested(id)
		}
		e.checkOwned(beat.Active)
		if !e.cfg.NoAdopt && now.Sub(lastAdopt) >= e.cfg.Lease {
			lastAdopt = now
			if err := e.adopt(e.ctx); err != nil && e.ctx.Err() == nil {
				e.log.Error("adopt jobs", "err", err)
			}
		}
		if !e.cfg.NoAdopt && now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			e.prune(e.ctx)
		}
	}
}

// cancelRequested carries out a cancel that another process asked for.
func (e *Engine) cancelRequested(id string) {
	if e.cancelInline(id) {
		return
	}
	e.mu.Lock()
	t := e.running[id]
	e.mu.Unlock()
	if t != nil {
		if t.cancelReason() != "" {
			return // already being cancelled
		}
		t.setCancelReason("cancelled from another sshjobs process")
		t.control(Control{Signal: "INT", Grace: e.cfg.CancelGrace})
		return
	}
	// Queued here and not yet started: it never starts. (If it just started,
	// the next heartbeat finds its task.)
	_, _ = e.cancelQueued(e.ctx, id)
}
