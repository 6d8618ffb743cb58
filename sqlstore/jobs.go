package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sshjobs/sshjobs/jobs"
)

// jobCols is the column list every query that returns jobs selects, in the
// order scanJob reads them.
const jobCols = `id, host, target, destination, session, command, detached, sudo, kill_after_ms,
	state, exit_code, signal, error, prompt_text, prompt_kind, cwd, new_shell,
	owner, lease_until_ms, cancel_requested, attach, output_bytes, gap_start, gap_end,
	output_lost, created_at_ms, started_at_ms, ended_at_ms, kind, error_kind`

// pruneBatch is how many jobs Prune deletes per transaction, so that deleting
// a month of output never holds the write lock for long.
const pruneBatch = 32

// SQL lists of the final and non-final states.
var (
	activeStates = inList(jobs.StateQueued, jobs.StateRunning, jobs.StateWaitingInput)
	finalStates  = inList(jobs.StateSucceeded, jobs.StateFailed, jobs.StateCancelled, jobs.StateLost, jobs.StateError)
)

// inList renders states as an SQL list of literals; states are constants of
// the jobs package, never input.
func inList(states ...jobs.State) string {
	q := make([]string, len(states))
	for i, s := range states {
		q[i] = "'" + string(s) + "'"
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// placeholders returns "(?, ?, ...)" for n values, and "()" (an empty SQL
// list, which SQLite accepts and nothing is IN) for none.
func placeholders(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// ms stores a time as Unix milliseconds; the zero time ("not reached") as NULL.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

type scanner interface{ Scan(dest ...any) error }

func scanJob(s scanner) (*jobs.Job, error) {
	var (
		j                                      jobs.Job
		state                                  string
		detached, sudo, newShell, cancel       int64
		killAfter                              int64
		exitCode, lease, created, started, end sql.NullInt64
		promptText, promptKind                 sql.NullString
		kind, errorKind                        string
	)
	err := s.Scan(&j.ID, &j.Host, &j.Target, &j.Destination, &j.Session, &j.Command, &detached, &sudo, &killAfter,
		&state, &exitCode, &j.Signal, &j.Error, &promptText, &promptKind, &j.Cwd, &newShell,
		&j.Owner, &lease, &cancel, &j.Attach, &j.OutputBytes, &j.GapStart, &j.GapEnd,
		&j.OutputLost, &created, &started, &end, &kind, &errorKind)
	if err != nil {
		return nil, err
	}
	j.Kind, j.ErrorKind = jobs.Kind(kind), jobs.ErrorKind(errorKind)
	j.State = jobs.State(state)
	j.Detached, j.Sudo, j.NewShell, j.CancelRequested = detached != 0, sudo != 0, newShell != 0, cancel != 0
	j.KillAfter = time.Duration(killAfter) * time.Millisecond
	if exitCode.Valid {
		c := int(exitCode.Int64)
		j.ExitCode = &c
	}
	if promptText.Valid {
		j.Prompt = &jobs.Prompt{Text: promptText.String, Kind: jobs.PromptKind(promptKind.String)}
	}
	j.LeaseUntil = fromMS(lease)
	j.CreatedAt, j.StartedAt, j.EndedAt = fromMS(created), fromMS(started), fromMS(end)
	return &j, nil
}

// queryJobs runs a query that returns jobCols and reads all its rows. Rows are
// always read to the end and closed: on the writer that is what commits a
// statement with RETURNING and frees the only connection.
func queryJobs(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]*jobs.Job, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*jobs.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Insert stores a new job. An empty ID gets a new UUIDv7, an empty State is
// queued and a zero CreatedAt is now; j is updated to match the row.
func (db *DB) Insert(ctx context.Context, j *jobs.Job) error {
	args, err := insertArgs(j)
	if err != nil {
		return err
	}
	if _, err := db.wq.ExecContext(ctx, `INSERT INTO jobs (`+jobCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?, ?, ?, ?, ?)`, args...); err != nil {
		return fmt.Errorf("insert job %s: %w", j.ID, err)
	}
	return nil
}

// InsertClaimed stores a new job, running if Claim would take it now, else
// queued (jobs.Store). One statement: nothing can queue or claim a job of
// the session between the check and the insert. The two checks are apart so
// that each is a range of the jobs_claim index, not a scan of the session's
// history.
func (db *DB) InsertClaimed(ctx context.Context, j *jobs.Job) error {
	j.State, j.StartedAt = jobs.StateQueued, time.Time{}
	args, err := insertArgs(j)
	if err != nil {
		return err
	}
	// busy decides the state and the start (the arguments ?10 and ?23 are
	// unused): started when created.
	var state string
	err = db.wq.QueryRowContext(ctx, `INSERT INTO jobs (`+jobCols+`)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
			CASE WHEN busy THEN 'queued' ELSE 'running' END, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, 0, 0, 0, 0,
			?22, CASE WHEN busy THEN NULL ELSE ?22 END, ?24, ?25, ?26
		FROM (SELECT EXISTS (
				SELECT 1 FROM jobs WHERE host = ?2 AND session = ?5 AND state = 'queued' AND owner = ?18)
			OR `+sessionRunsSQL("?2", "?5", "?18")+` AS busy)
		RETURNING state`, args...).Scan(&state)
	if err != nil {
		return fmt.Errorf("insert job %s: %w", j.ID, err)
	}
	if j.State = jobs.State(state); j.State == jobs.StateRunning {
		j.StartedAt = time.UnixMilli(j.CreatedAt.UnixMilli())
	}
	return nil
}

// sessionRunsSQL is the condition that the session (host, session, owner:
// parameters) runs a job in its shell, which Claim and InsertClaimed wait
// for; a detached job does not hold its session.
func sessionRunsSQL(host, session, owner string) string {
	return `EXISTS (SELECT 1 FROM jobs WHERE host = ` + host + ` AND session = ` + session +
		` AND state IN ('running', 'waiting_input') AND detached = 0 AND kind = 'command' AND owner = ` + owner + `)`
}

// insertArgs checks a new job, fills in its defaults (see Insert) and
// returns the values of its row, in the order of jobCols without the four
// output columns.
func insertArgs(j *jobs.Job) ([]any, error) {
	if j.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("insert job: %w", err)
		}
		j.ID = id.String()
	}
	if j.State == "" {
		j.State = jobs.StateQueued
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now()
	}
	if j.Kind == "" {
		j.Kind = jobs.KindCommand
	}
	switch {
	case !j.Kind.Valid():
		return nil, fmt.Errorf("insert job %s: unknown kind %q: %w", j.ID, j.Kind, jobs.ErrBadInput)
	case !j.State.Valid():
		return nil, fmt.Errorf("insert job %s: unknown state %q: %w", j.ID, j.State, jobs.ErrBadInput)
	case j.Host == "" || j.Session == "":
		return nil, fmt.Errorf("insert job %s: host and session are required: %w", j.ID, jobs.ErrBadInput)
	case j.OutputBytes != 0 || j.GapStart != 0 || j.GapEnd != 0 || j.OutputLost != 0:
		// Output bookkeeping belongs to AppendOutput, which needs it to
		// match the stored chunks.
		return nil, fmt.Errorf("insert job %s: a new job has no output: %w", j.ID, jobs.ErrBadInput)
	}
	var exitCode, promptText, promptKind any
	if j.ExitCode != nil {
		exitCode = int64(*j.ExitCode)
	}
	if j.Prompt != nil {
		promptText, promptKind = j.Prompt.Text, string(j.Prompt.Kind)
	}
	return []any{j.ID, j.Host, j.Target, j.Destination, j.Session, j.Command, boolInt(j.Detached), boolInt(j.Sudo), j.KillAfter.Milliseconds(),
		string(j.State), exitCode, j.Signal, j.Error, promptText, promptKind, j.Cwd, boolInt(j.NewShell),
		j.Owner, ms(j.LeaseUntil), boolInt(j.CancelRequested), j.Attach,
		j.CreatedAt.UnixMilli(), ms(j.StartedAt), ms(j.EndedAt), string(j.Kind), string(j.ErrorKind)}, nil
}

// Get returns the job, or an error wrapping jobs.ErrNotFound.
func (db *DB) Get(ctx context.Context, id string) (*jobs.Job, error) {
	j, err := scanJob(db.rq.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

// List returns the jobs f selects, newest first, at most f.EffectiveLimit().
func (db *DB) List(ctx context.Context, f jobs.ListFilter) ([]*jobs.Job, error) {
	var where []string
	var args []any
	if f.Host != "" {
		where = append(where, "(host = ? OR target = ?)")
		args = append(args, f.Host, f.Host)
	}
	if f.Session != "" {
		where = append(where, "session = ?")
		args = append(args, f.Session)
	}
	if len(f.States) > 0 {
		for _, s := range f.States {
			if !s.Valid() {
				return nil, fmt.Errorf("list jobs: unknown state %q: %w", s, jobs.ErrBadInput)
			}
			args = append(args, string(s))
		}
		where = append(where, "state IN "+placeholders(len(f.States)))
	}
	if f.Contains != "" {
		where = append(where, "instr(command, ?) > 0")
		args = append(args, f.Contains)
	}
	if !f.Since.IsZero() {
		where = append(where, "created_at_ms >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at_ms DESC, id DESC LIMIT ?"
	args = append(args, f.EffectiveLimit())
	js, err := queryJobs(ctx, db.r, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// Claim moves the oldest queued job of (host, session) owned by owner to
// running, setting its lease and start time, unless a non-detached job of that
// session and owner is running or waiting for input. It is one statement, so
// two workers (or two processes) never claim the same job, and a session never
// runs two shell jobs at once. It returns nil, nil when there is nothing to
// claim.
//
// A session is a shell of the owner's process: another process's "default"
// session on the same host is another shell, and its running job does not hold
// this one up. (It could not anyway without polling: nothing would wake this
// owner's worker when that job ends.)
func (db *DB) Claim(ctx context.Context, owner, host, session string, now, leaseUntil time.Time) (*jobs.Job, error) {
	js, err := queryJobs(ctx, db.wq, `UPDATE jobs
		SET state = 'running', owner = ?1, lease_until_ms = ?2, started_at_ms = ?3
		WHERE id = (
			SELECT id FROM jobs
			WHERE host = ?4 AND session = ?5 AND state = 'queued' AND owner = ?1
			ORDER BY created_at_ms, id
			LIMIT 1)
		AND NOT `+sessionRunsSQL("?4", "?5", "?1")+`
		RETURNING `+jobCols,
		owner, ms(leaseUntil), ms(now), host, session)
	if err != nil {
		return nil, fmt.Errorf("claim job for %s/%s: %w", host, session, err)
	}
	if len(js) == 0 {
		return nil, nil
	}
	return js[0], nil
}

// updateSet renders u as SQL assignments. Nil fields are left out.
func updateSet(u jobs.Update) (sets []string, args []any) {
	add := func(col string, v any) {
		sets = append(sets, col+" = ?")
		args = append(args, v)
	}
	if u.ExitCode != nil {
		add("exit_code", int64(*u.ExitCode))
	}
	if u.Signal != nil {
		add("signal", *u.Signal)
	}
	if u.Error != nil {
		add("error", *u.Error)
	}
	if u.ErrorKind != nil {
		add("error_kind", string(*u.ErrorKind))
	}
	switch {
	case u.Prompt != nil:
		// A prompt given wins over ClearPrompt: it is the newer news.
		add("prompt_text", u.Prompt.Text)
		add("prompt_kind", string(u.Prompt.Kind))
	case u.ClearPrompt:
		add("prompt_text", nil)
		add("prompt_kind", nil)
	}
	if u.Cwd != nil {
		add("cwd", *u.Cwd)
	}
	if u.NewShell != nil {
		add("new_shell", boolInt(*u.NewShell))
	}
	if u.Attach != nil {
		add("attach", *u.Attach)
	}
	if u.Owner != nil {
		add("owner", *u.Owner)
	}
	if u.LeaseUntil != nil {
		add("lease_until_ms", ms(*u.LeaseUntil))
	}
	if u.StartedAt != nil {
		add("started_at_ms", ms(*u.StartedAt))
	}
	if u.EndedAt != nil {
		add("ended_at_ms", ms(*u.EndedAt))
	}
	return sets, args
}

// refused explains why a conditional update of job id matched no row: the job
// does not exist (jobs.ErrNotFound), or its state, named in the error, does not
// allow the change (jobs.ErrTransition). Read after the update, it names the
// state the job is in by then.
func refused(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) error {
	var state string
	err := q.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return jobs.ErrNotFound
	case err != nil:
		return err
	}
	return fmt.Errorf("job is %s: %w", state, jobs.ErrTransition)
}

// Transition moves job id to state to and applies u, if jobs.AllowedFrom(to)
// contains its current state; the check and the change are one UPDATE.
func (db *DB) Transition(ctx context.Context, id string, to jobs.State, u jobs.Update) (*jobs.Job, error) {
	if !to.Valid() {
		return nil, fmt.Errorf("transition job %s to %q: unknown state: %w", id, to, jobs.ErrBadInput)
	}
	return db.transition(ctx, id, jobs.AllowedFrom(to), to, u)
}

// CancelQueued moves job id from queued to cancelled and applies u; a job
// claimed meanwhile (running) or ended refuses: the check and the change are
// one UPDATE.
func (db *DB) CancelQueued(ctx context.Context, id string, u jobs.Update) (*jobs.Job, error) {
	return db.transition(ctx, id, []jobs.State{jobs.StateQueued}, jobs.StateCancelled, u)
}

// Requeue gives a claimed job that never started back to the queue
// (jobs.Store).
func (db *DB) Requeue(ctx context.Context, id, owner string) error {
	res, err := db.wq.ExecContext(ctx, `UPDATE jobs SET state = 'queued', started_at_ms = NULL
		WHERE id = ? AND owner = ? AND state = 'running'`, id, owner)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil && n == 0 {
		err = refusedEnd(ctx, db.w, id, owner)
	}
	if err != nil {
		return fmt.Errorf("requeue job %s: %w", id, err)
	}
	return nil
}

// transition moves job id to state to and applies u if its state is one of
// from.
func (db *DB) transition(ctx context.Context, id string, from []jobs.State, to jobs.State, u jobs.Update) (*jobs.Job, error) {
	sets, args := updateSet(u)
	sets = append([]string{"state = ?"}, sets...)
	args = append([]any{string(to)}, args...)
	args = append(args, id)
	for _, s := range from {
		args = append(args, string(s))
	}
	// One UPDATE is atomic by itself: no transaction, so that the statement
	// can come from the cache (preparing needs the writer's only connection,
	// which a transaction would hold).
	js, err := queryJobs(ctx, db.wq, `UPDATE jobs SET `+strings.Join(sets, ", ")+`
		WHERE id = ? AND state IN `+placeholders(len(from))+` RETURNING `+jobCols, args...)
	if err == nil && len(js) == 0 {
		err = refused(ctx, db.w, id)
	}
	if err != nil {
		return nil, fmt.Errorf("transition job %s to %s: %w", id, to, err)
	}
	return js[0], nil
}

// Set applies u to job id without changing its state; a final job refuses
// with jobs.ErrTransition.
func (db *DB) Set(ctx context.Context, id string, u jobs.Update) error {
	sets, args := updateSet(u)
	if len(sets) == 0 {
		// Still report a missing or final job, as a real change would.
		sets = []string{"state = state"}
	}
	args = append(args, id)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET `+strings.Join(sets, ", ")+`
			WHERE id = ? AND state IN `+activeStates, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		return refused(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("set job %s: %w", id, err)
	}
	return nil
}

// RequestCancel marks a non-final job for cancellation by its owner, who
// learns of it from Heartbeat. A final job refuses with jobs.ErrTransition.
func (db *DB) RequestCancel(ctx context.Context, id string) (*jobs.Job, error) {
	var j *jobs.Job
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		js, err := queryJobs(ctx, tx, `UPDATE jobs SET cancel_requested = 1
			WHERE id = ? AND state IN `+activeStates+` RETURNING `+jobCols, id)
		if err != nil {
			return err
		}
		if len(js) == 0 {
			return refused(ctx, tx, id)
		}
		j = js[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("request cancel of job %s: %w", id, err)
	}
	return j, nil
}

// End records the end of a job that owner ran, if owner still owns it and
// its state allows the move to to, or it is lost (and to is not): a process
// that took owner for gone ended it lost and kept owner as its owner, and the
// owner, alive after all, has the real end. Only the process that ran the job
// calls End for it, once, so a lost job of owner that reaches End was ended
// by another process: the lost gives way, exactly then.
func (db *DB) End(ctx context.Context, id, owner string, to jobs.State, u jobs.Update) (*jobs.Job, error) {
	if !to.Final() {
		return nil, fmt.Errorf("end job %s as %q: not a final state: %w", id, to, jobs.ErrBadInput)
	}
	from := jobs.AllowedFrom(to)
	if to != jobs.StateLost {
		from = append(from, jobs.StateLost)
	}
	sets, args := updateSet(u)
	sets = append([]string{"state = ?"}, sets...)
	args = append([]any{string(to)}, args...)
	args = append(args, id, owner)
	for _, s := range from {
		args = append(args, string(s))
	}
	js, err := queryJobs(ctx, db.wq, `UPDATE jobs SET `+strings.Join(sets, ", ")+`
		WHERE id = ? AND owner = ? AND state IN `+placeholders(len(from))+` RETURNING `+jobCols, args...)
	if err == nil && len(js) == 0 {
		err = refusedEnd(ctx, db.w, id, owner)
	}
	if err != nil {
		return nil, fmt.Errorf("end job %s as %s for %s: %w", id, to, owner, err)
	}
	return js[0], nil
}

// refusedEnd explains why End (or Requeue) matched no row: no such job,
// another owner, or a state that refuses the move.
func refusedEnd(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id, owner string) error {
	var state, by string
	err := q.QueryRowContext(ctx, `SELECT state, owner FROM jobs WHERE id = ?`, id).Scan(&state, &by)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return jobs.ErrNotFound
	case err != nil:
		return err
	case by != owner:
		return fmt.Errorf("job is %s, owned by %s: %w (%w)", state, by, jobs.ErrTransition, jobs.ErrNotOwner)
	}
	return fmt.Errorf("job is %s: %w", state, jobs.ErrTransition)
}

// RegisterOwner inserts the row of an owner, or replaces it.
func (db *DB) RegisterOwner(ctx context.Context, o jobs.OwnerInfo) error {
	if _, err := db.wq.ExecContext(ctx, upsertOwner, ownerArgs(o)...); err != nil {
		return fmt.Errorf("register owner %s: %w", o.ID, err)
	}
	return nil
}

const upsertOwner = `INSERT INTO owners (id, hostname, pid, proc_start, started_at_ms, heartbeat_ms)
	VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
		proc_start = excluded.proc_start, started_at_ms = excluded.started_at_ms,
		heartbeat_ms = excluded.heartbeat_ms`

func ownerArgs(o jobs.OwnerInfo) []any {
	return []any{o.ID, o.Hostname, int64(o.PID), o.ProcStart, o.StartedAt.UnixMilli(), o.Heartbeat.UnixMilli()}
}

// RemoveOwner deletes the row of an owner; a missing row is not an error.
func (db *DB) RemoveOwner(ctx context.Context, id string) error {
	if _, err := db.wq.ExecContext(ctx, `DELETE FROM owners WHERE id = ?`, id); err != nil {
		return fmt.Errorf("remove owner %s: %w", id, err)
	}
	return nil
}

// Heartbeat records the owner's heartbeat and sets the lease of each of its
// non-final jobs to leaseUntil, in one transaction, and returns those jobs'
// ids, sorted, and those with a cancel request.
func (db *DB) Heartbeat(ctx context.Context, o jobs.OwnerInfo, leaseUntil time.Time) (jobs.Beat, error) {
	var b jobs.Beat
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, upsertOwner, ownerArgs(o)...); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE jobs SET lease_until_ms = ?
			WHERE owner = ? AND state IN `+activeStates+`
			RETURNING id, cancel_requested`, ms(leaseUntil), o.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var c int64
			if err := rows.Scan(&id, &c); err != nil {
				return err
			}
			b.Active = append(b.Active, id)
			if c != 0 {
				b.Cancel = append(b.Cancel, id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return jobs.Beat{}, fmt.Errorf("heartbeat of %s: %w", o.ID, err)
	}
	slices.Sort(b.Active)
	slices.Sort(b.Cancel)
	return b, nil
}

// runningStates are the states of a job that a process is running.
var runningStates = inList(jobs.StateRunning, jobs.StateWaitingInput)

// ExpiredOwners lists, sorted by id, the owners of running jobs whose lease
// ended before now, with their rows where they have one.
func (db *DB) ExpiredOwners(ctx context.Context, now time.Time) ([]jobs.OwnerInfo, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT e.owner, o.hostname, o.pid, o.proc_start, o.started_at_ms, o.heartbeat_ms
		FROM (SELECT DISTINCT owner FROM jobs
			WHERE state IN `+runningStates+` AND (lease_until_ms IS NULL OR lease_until_ms < ?)) AS e
		LEFT JOIN owners AS o ON o.id = e.owner
		ORDER BY e.owner`, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("expired owners: %w", err)
	}
	defer rows.Close()
	var out []jobs.OwnerInfo
	for rows.Next() {
		var o jobs.OwnerInfo
		var host, start sql.NullString
		var pid, started, beat sql.NullInt64
		if err := rows.Scan(&o.ID, &host, &pid, &start, &started, &beat); err != nil {
			return nil, fmt.Errorf("expired owners: %w", err)
		}
		o.Hostname, o.PID, o.ProcStart = host.String, int(pid.Int64), start.String
		o.StartedAt, o.Heartbeat = fromMS(started), fromMS(beat)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expired owners: %w", err)
	}
	return out, nil
}

// Adopt, in one transaction, makes owner the owner of the queued jobs whose
// lease ended before o.Now (a job with no lease counts as expired) and, when
// o.Reattach, of the running detached jobs of o.Gone, and lists the other
// running jobs of o.Gone as orphans, unchanged. Running jobs are taken only
// with an expired lease, and only from a gone owner that has not beaten
// since it was judged (its row's heartbeat is not newer than the one in
// o.Gone; a row that appeared counts as a beat), checked in the same
// transaction: an owner that woke up meanwhile keeps its jobs.
func (db *DB) Adopt(ctx context.Context, owner string, o jobs.AdoptOptions) (taken, orphans []*jobs.Job, err error) {
	// ?1 now, ?2 the adopter, ?3 its lease, ?4 reattach, then the gone
	// owners and their heartbeats.
	args := []any{o.Now.UnixMilli(), owner, ms(o.LeaseUntil), boolInt(o.Reattach)}
	leaseOver := `(lease_until_ms IS NULL OR lease_until_ms < ?1)`
	expired := `state IN ` + activeStates + ` AND ` + leaseOver
	var gone []string
	for _, g := range o.Gone {
		seen := int64(0) // no row: any row now is a beat
		if !g.Heartbeat.IsZero() {
			seen = g.Heartbeat.UnixMilli()
		}
		n := len(args)
		gone = append(gone, `(owner = ?`+strconv.Itoa(n+1)+` AND NOT EXISTS (SELECT 1 FROM owners
			WHERE owners.id = jobs.owner AND owners.heartbeat_ms > ?`+strconv.Itoa(n+2)+`))`)
		args = append(args, g.ID, seen)
	}
	ofGone := `0`
	if len(gone) > 0 {
		ofGone = `state IN ` + runningStates + ` AND (` + strings.Join(gone, " OR ") + `)`
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		// A queued job is taken once its lease expired, or at once when its
		// owner stopped cleanly (its row is gone): nothing else would run it.
		taken, err = queryJobs(ctx, tx, `UPDATE jobs SET owner = ?2, lease_until_ms = ?3
			WHERE (state = 'queued' AND (`+leaseOver+`
					OR (owner != ?2 AND NOT EXISTS (SELECT 1 FROM owners WHERE owners.id = jobs.owner))))
				OR (`+expired+` AND ?4 AND detached = 1 AND `+ofGone+`)
			RETURNING `+jobCols, args...)
		if err != nil {
			return err
		}
		orphans, err = queryJobs(ctx, tx, `SELECT `+jobCols+` FROM jobs
			WHERE `+expired+` AND `+ofGone+` AND owner != ?2
			ORDER BY created_at_ms, id`, args...)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("adopt jobs for %s: %w", owner, err)
	}
	// RETURNING has no ORDER BY.
	slices.SortFunc(taken, func(a, b *jobs.Job) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return taken, orphans, nil
}

// QueuedSessions lists, sorted, the (host, session) pairs with queued jobs of
// owner.
func (db *DB) QueuedSessions(ctx context.Context, owner string) ([][2]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT host, session FROM jobs
		WHERE state = 'queued' AND owner = ? ORDER BY host, session`, owner)
	if err != nil {
		return nil, fmt.Errorf("queued sessions of %s: %w", owner, err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var hs [2]string
		if err := rows.Scan(&hs[0], &hs[1]); err != nil {
			return nil, fmt.Errorf("queued sessions of %s: %w", owner, err)
		}
		out = append(out, hs)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queued sessions of %s: %w", owner, err)
	}
	return out, nil
}

// Prune deletes the final jobs that ended before before, and their output,
// and returns how many. A final job with no end time counts from its creation.
// It deletes in small transactions, so that writers are never held up for
// long.
func (db *DB) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := db.w.ExecContext(ctx, `DELETE FROM jobs WHERE id IN (
			SELECT id FROM jobs
			WHERE state IN `+finalStates+`
			AND (ended_at_ms < ?1 OR (ended_at_ms IS NULL AND created_at_ms < ?1))
			LIMIT ?2)`, before.UnixMilli(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune jobs ended before %s: %w", before.Format(time.RFC3339), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune jobs ended before %s: %w", before.Format(time.RFC3339), err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// PruneOwners deletes the rows of owners whose heartbeat is before before
// and that own no non-final job: processes that died, once nothing needs
// their row to decide about their jobs.
func (db *DB) PruneOwners(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM owners WHERE heartbeat_ms < ?
		AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.owner = owners.id AND jobs.state IN `+activeStates+`)`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune owners seen before %s: %w", before.Format(time.RFC3339), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune owners seen before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}
