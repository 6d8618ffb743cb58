package sqlstore

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
	"github.com/sshjobs/sshjobs/jobs/jobstest"
)

// sqlstore passes the jobs.Store contract, on a real SQLite file.
func TestStoreSuite(t *testing.T) {
	jobstest.ExerciseStore(t, func(t *testing.T) jobs.Store { return openTest(t) })
}

// brokenStoreEnv selects the broken store TestHelperBrokenStore runs the
// suite against; unset, that test is skipped.
const brokenStoreEnv = "SSHJOBS_BROKEN_STORE"

// The suite bites: each deliberately broken store fails it, in the subtests
// that name its fault. The suite runs in a child process because a failing
// subtest would fail this test too.
func TestStoreSuiteBites(t *testing.T) {
	jobstest.ExpectFailures(t, "TestHelperBrokenStore", brokenStoreEnv, map[string][]string{
		"claim-busy":           {"claim/busy_session", "claim/concurrent"},
		"transition-unchecked": {"transition/every_pair", "transition/final_states_are_never_left"},
		"heartbeat-no-cancel":  {"heartbeat"},
		"cancel-running":       {"cancel_queued"},
		"prune-active":         {"prune"},
	})
}

// TestHelperBrokenStore is the child of TestStoreSuiteBites.
func TestHelperBrokenStore(t *testing.T) {
	broken := os.Getenv(brokenStoreEnv)
	if broken == "" {
		t.Skip("run by TestStoreSuiteBites, with " + brokenStoreEnv + " set")
	}
	jobstest.ExerciseStore(t, func(t *testing.T) jobs.Store {
		return brokenStore{DB: openTest(t), broken: broken}
	})
}

// brokenStore is sqlstore with one fault, each a plausible bug of a driver.
type brokenStore struct {
	*DB
	broken string
}

// Claim, as "claim-busy", takes the oldest queued job of the session even
// while a shell job of the session runs.
func (b brokenStore) Claim(ctx context.Context, owner, host, session string, now, leaseUntil time.Time) (*jobs.Job, error) {
	if b.broken != "claim-busy" {
		return b.DB.Claim(ctx, owner, host, session, now, leaseUntil)
	}
	js, err := queryJobs(ctx, b.wq, `UPDATE jobs SET state = 'running', owner = ?1, lease_until_ms = ?2, started_at_ms = ?3
		WHERE id = (SELECT id FROM jobs WHERE host = ?4 AND session = ?5 AND state = 'queued' AND owner = ?1
			ORDER BY created_at_ms, id LIMIT 1)
		RETURNING `+jobCols, owner, ms(leaseUntil), ms(now), host, session)
	if err != nil || len(js) == 0 {
		return nil, err
	}
	return js[0], nil
}

// Transition, as "transition-unchecked", moves the job whatever its state.
func (b brokenStore) Transition(ctx context.Context, id string, to jobs.State, u jobs.Update) (*jobs.Job, error) {
	if b.broken != "transition-unchecked" {
		return b.DB.Transition(ctx, id, to, u)
	}
	sets, args := updateSet(u)
	sets = append([]string{"state = ?"}, sets...)
	args = append([]any{string(to)}, args...)
	js, err := queryJobs(ctx, b.wq, `UPDATE jobs SET `+strings.Join(sets, ", ")+` WHERE id = ? RETURNING `+jobCols, append(args, id)...)
	if err == nil && len(js) == 0 {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("transition job %s: %w", id, err)
	}
	return js[0], nil
}

// CancelQueued, as "cancel-running", cancels whatever Transition allows,
// also a job claimed meanwhile (the engine's bug before CancelQueued).
func (b brokenStore) CancelQueued(ctx context.Context, id string, u jobs.Update) (*jobs.Job, error) {
	if b.broken != "cancel-running" {
		return b.DB.CancelQueued(ctx, id, u)
	}
	return b.DB.Transition(ctx, id, jobs.StateCancelled, u)
}

// Heartbeat, as "heartbeat-no-cancel", forgets the cancel requests.
func (b brokenStore) Heartbeat(ctx context.Context, o jobs.OwnerInfo, leaseUntil time.Time) (jobs.Beat, error) {
	beat, err := b.DB.Heartbeat(ctx, o, leaseUntil)
	if b.broken == "heartbeat-no-cancel" {
		beat.Cancel = nil
	}
	return beat, err
}

// Prune, as "prune-active", deletes every job that ended before before,
// final or not.
func (b brokenStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	if b.broken != "prune-active" {
		return b.DB.Prune(ctx, before)
	}
	res, err := b.w.ExecContext(ctx, `DELETE FROM jobs WHERE ended_at_ms < ?`, before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
