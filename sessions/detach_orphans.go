package sessions

import (
	"context"
	"fmt"
	"path"
	"sort"
)

// OrphanSpools lists the spool folders on target's host (under
// PoolConfig.SpoolDir) whose job ids known does not recognise: spools of jobs
// that the database no longer holds (pruned, or another database), or of a
// run that died between creating the spool and recording the job. Each one is
// also logged as a warning. Nothing is deleted: a spool may hold the only
// copy of a job's output, so removing it is a person's decision.
func (e *Executor) OrphanSpools(ctx context.Context, target string, known func(id string) bool) ([]string, error) {
	h, err := e.pool.Resolve(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("orphan spools on %s: %w", target, err)
	}
	c, err := e.pool.acquire(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("orphan spools: connect %s: %w", h.Key(), err)
	}
	defer e.pool.release(c)
	lines, err := execReport(ctx, c, orphanScript, e.cfg.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("orphan spools on %s: %w", h.Key(), err)
	}
	var base string
	var orphans []string
	for _, l := range lines {
		switch {
		case len(l) >= 2 && l[0] == "dir":
			base = l[1]
		case len(l) == 2 && l[0] == "job" && base != "" && !known(l[1]):
			orphans = append(orphans, path.Join(base, l[1]))
		}
	}
	sort.Strings(orphans)
	for _, o := range orphans {
		e.log.Warn("spool of an unknown job left on the host (not deleted)", "host", h.Key(), "spool", o)
	}
	return orphans, nil
}
