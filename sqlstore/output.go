package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sshjobs/sshjobs/jobs"
)

const (
	// maxRow is the largest piece of output stored in one row; bigger chunks
	// are split. It bounds what a read at any offset loads, and how far the
	// cap's whole-row deletion can undershoot.
	maxRow = 64 << 10
	// MaxRead is the most ReadOutput returns at once.
	MaxRead = 16 << 20
)

// outJob is AppendOutput's view of one job during a batch.
type outJob struct {
	id                            string
	total, gapStart, gapEnd, lost int64 // as in jobs.Job, kept up to date
	seq                           int64 // of the next row
}

// AppendOutput stores chunks, of any jobs, in one transaction, and advances
// each job's OutputBytes.
//
// A chunk must start at or before the job's OutputBytes: bytes already stored
// are skipped, so that resending output after a restart is harmless, and a
// chunk that would leave a hole fails the batch with jobs.ErrBadInput. A
// Lost chunk advances OutputBytes and OutputLost without a row: the hole it
// leaves is recorded, and reads pass over it.
//
// With maxJobOutput > 0, a job keeps at most that many bytes: the head, bytes
// [0, maxJobOutput/2), and the most recent output. When the output past the
// head grows beyond maxJobOutput - maxJobOutput/2, its oldest rows are deleted
// whole and the job's gap grows to cover them, so the kept tail is at least
// that long and at most that plus one row (64 KiB). Rows are split at the
// head's end, so the head is exact.
func (db *DB) AppendOutput(ctx context.Context, chunks []jobs.Chunk, maxJobOutput int64) error {
	if len(chunks) == 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	var logged int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		logged = 0
		insert := tx.StmtContext(ctx, db.stInsertChunk)
		load := tx.StmtContext(ctx, db.stJobOutput)
		lastSeq := tx.StmtContext(ctx, db.stLastSeq)
		save := tx.StmtContext(ctx, db.stSetOutput)

		var order []*outJob // first appearance, for a deterministic write order
		byID := map[string]*outJob{}
		for _, c := range chunks {
			if c.Offset < 0 {
				return fmt.Errorf("job %s: negative offset %d: %w", c.JobID, c.Offset, jobs.ErrBadInput)
			}
			if len(c.Data) == 0 && c.Lost <= 0 {
				continue
			}
			j := byID[c.JobID]
			if j == nil {
				j = &outJob{id: c.JobID}
				err := load.QueryRowContext(ctx, c.JobID).Scan(&j.total, &j.gapStart, &j.gapEnd, &j.lost)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("job %s: %w", c.JobID, jobs.ErrNotFound)
				}
				if err != nil {
					return fmt.Errorf("job %s: %w", c.JobID, err)
				}
				err = lastSeq.QueryRowContext(ctx, c.JobID).Scan(&j.seq)
				switch {
				case err == nil:
					j.seq++
				case !errors.Is(err, sql.ErrNoRows):
					return fmt.Errorf("job %s: %w", c.JobID, err)
				}
				byID[c.JobID] = j
				order = append(order, j)
			}
			if c.Offset > j.total {
				return fmt.Errorf("job %s: chunk at offset %d leaves a hole after %d: %w",
					c.JobID, c.Offset, j.total, jobs.ErrBadInput)
			}
			if c.Lost > 0 {
				if n := c.Offset + c.Lost - j.total; n > 0 {
					j.total += n
					j.lost += n
				}
				continue
			}
			data := c.Data
			if skip := j.total - c.Offset; skip > 0 {
				if skip >= int64(len(data)) {
					continue
				}
				data = data[skip:]
			}
			at := now
			if !c.At.IsZero() {
				at = c.At.UnixMilli()
			}
			headEnd := int64(-1)
			if maxJobOutput > 0 && j.gapEnd == 0 {
				headEnd = maxJobOutput / 2
			}
			for len(data) > 0 {
				n := int64(min(len(data), maxRow))
				if j.total < headEnd && j.total+n > headEnd {
					n = headEnd - j.total
				}
				if _, err := insert.ExecContext(ctx, c.JobID, j.seq, j.total, data[:n], at); err != nil {
					return fmt.Errorf("job %s: insert chunk at %d: %w", c.JobID, j.total, err)
				}
				logged += n
				j.seq++
				j.total += n
				data = data[n:]
			}
		}
		for _, j := range order {
			if maxJobOutput > 0 {
				if err := capOutput(ctx, tx, j, maxJobOutput); err != nil {
					return fmt.Errorf("job %s: cap output: %w", j.id, err)
				}
			}
			if _, err := save.ExecContext(ctx, j.total, j.gapStart, j.gapEnd, j.lost, j.id); err != nil {
				return fmt.Errorf("job %s: %w", j.id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append output (%d chunks): %w", len(chunks), err)
	}
	db.ckpt.logged(logged)
	db.ckpt.kick()
	return nil
}

// capOutput deletes the oldest rows past job j's head that lie wholly before
// the tail allowance (every row [o, e) with e <= total-tail: one range delete),
// and records the gap they leave. The tail's length is known without reading
// rows (total minus the gap's end, or minus the head when there is no gap
// yet), so a job within its allowance costs no query.
func capOutput(ctx context.Context, tx *sql.Tx, j *outJob, maxJobOutput int64) error {
	head := maxJobOutput / 2
	tail := maxJobOutput - head
	start := head
	if j.gapEnd > 0 {
		start = j.gapEnd
	}
	if j.total-start <= tail {
		return nil
	}
	// A row goes only if it ends before the tail window: a row longer than
	// the window (a big last write) must stay, or nothing recent would be.
	rows, err := tx.QueryContext(ctx, `DELETE FROM output_chunks
		WHERE job_id = ?1 AND offset >= ?2 AND offset < ?3 AND offset + length(data) <= ?3
		RETURNING offset, length(data)`, j.id, start, j.total-tail)
	if err != nil {
		return err
	}
	defer rows.Close()
	first, end := int64(-1), int64(-1)
	for rows.Next() {
		var off, n int64
		if err := rows.Scan(&off, &n); err != nil {
			return err
		}
		if first < 0 || off < first {
			first = off
		}
		end = max(end, off+n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if first < 0 {
		// Nothing ends before the window: the rows past the head are one
		// row reaching into it, or a head row stored before a cap was set.
		return nil
	}
	if j.gapEnd == 0 {
		j.gapStart = first
	}
	j.gapEnd = end
	return nil
}

// ReadOutput returns up to limit (at most MaxRead) bytes of job id's output
// from offset. An offset past the end is clamped to it, and returns no data.
// A read that begins inside the gap left by the output cap, or inside output
// that could not be stored, starts after it, with Skipped saying how many
// bytes were passed over; a read that reaches either stops there. Negative
// offset or limit fail with jobs.ErrBadInput.
func (db *DB) ReadOutput(ctx context.Context, id string, offset, limit int64) (jobs.Output, error) {
	if offset < 0 || limit < 0 {
		return jobs.Output{}, fmt.Errorf("read output of job %s: offset %d and limit %d must not be negative: %w",
			id, offset, limit, jobs.ErrBadInput)
	}
	limit = min(limit, MaxRead)
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return jobs.Output{}, fmt.Errorf("read output of job %s: %w", id, err)
	}
	// Read-only: nothing to commit, and Rollback ends the snapshot.
	defer tx.Rollback()

	var out jobs.Output
	var gapStart, gapEnd int64
	err = tx.QueryRowContext(ctx, `SELECT output_bytes, gap_start, gap_end FROM jobs WHERE id = ?`, id).
		Scan(&out.Total, &gapStart, &gapEnd)
	if errors.Is(err, sql.ErrNoRows) {
		err = jobs.ErrNotFound
	}
	if err != nil {
		return jobs.Output{}, fmt.Errorf("read output of job %s: %w", id, err)
	}
	from := min(offset, out.Total)
	to := out.Total
	if gapEnd > 0 {
		if from >= gapStart && from < gapEnd {
			out.Skipped = gapEnd - from
			from = gapEnd
		} else if from < gapStart {
			to = gapStart
		}
	}
	if from < to {
		// Output that could not be stored has no rows: a read that begins
		// in such a hole starts at the next stored byte.
		next, err := holeEnd(ctx, tx, id, from, to)
		if err != nil {
			return jobs.Output{}, fmt.Errorf("read output of job %s at %d: %w", id, from, err)
		}
		out.Skipped += next - from
		from = next
	}
	out.Offset = from
	to = min(to, from+limit)
	if from >= to {
		return out, nil
	}

	// The first row is the one holding from: the last to start at or before
	// it. substr keeps only the requested bytes of the rows at either end.
	rows, err := tx.QueryContext(ctx, `SELECT offset,
			substr(data, max(?2 - offset, 0) + 1, min(offset + length(data), ?3) - max(offset, ?2))
		FROM output_chunks
		WHERE job_id = ?1
		AND offset >= coalesce((SELECT max(offset) FROM output_chunks WHERE job_id = ?1 AND offset <= ?2), 0)
		AND offset < ?3
		ORDER BY offset`, id, from, to)
	if err != nil {
		return jobs.Output{}, fmt.Errorf("read output of job %s at %d: %w", id, from, err)
	}
	defer rows.Close()
	buf := make([]byte, 0, to-from)
	for rows.Next() {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return jobs.Output{}, fmt.Errorf("read output of job %s at %d: %w", id, from, err)
		}
		if max(off, from) != from+int64(len(buf)) {
			break // a missing row: return what is contiguous
		}
		buf = append(buf, data...)
	}
	if err := rows.Err(); err != nil {
		return jobs.Output{}, fmt.Errorf("read output of job %s at %d: %w", id, from, err)
	}
	out.Data = buf
	return out, nil
}

// holeEnd returns from when the byte at from is stored, else where the hole
// holding it ends: the next stored byte, or to.
func holeEnd(ctx context.Context, tx *sql.Tx, id string, from, to int64) (int64, error) {
	var end int64
	err := tx.QueryRowContext(ctx, `SELECT offset + length(data) FROM output_chunks
		WHERE job_id = ? AND offset <= ? ORDER BY offset DESC LIMIT 1`, id, from).Scan(&end)
	switch {
	case err == nil && end > from:
		return from, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return 0, err
	}
	var next sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT min(offset) FROM output_chunks
		WHERE job_id = ? AND offset > ?`, id, from).Scan(&next); err != nil {
		return 0, err
	}
	if next.Valid && next.Int64 < to {
		return next.Int64, nil
	}
	return to, nil
}
