package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// The credential store's tables (migration 0003). Values arrive and leave
// sealed: nothing here sees a secret in the clear.

var _ credstore.Storage = (*DB)(nil)

const keyCols = "version, kdf, salt, time_cost, memory_kib, threads, verifier, created_at_ms"

func scanKeyRow(s scanner) (*credstore.KeyRow, error) {
	var k credstore.KeyRow
	var created int64
	var tc, mem, th int64
	if err := s.Scan(&k.Version, &k.KDF, &k.Salt, &tc, &mem, &th, &k.Verifier, &created); err != nil {
		return nil, err
	}
	if tc < 0 || tc > 1<<32-1 || mem < 0 || mem > 1<<32-1 || th < 0 || th > 255 {
		return nil, fmt.Errorf("credential key row: parameters out of range (time %d, memory %d, threads %d)", tc, mem, th)
	}
	k.Time, k.MemoryKiB, k.Threads = uint32(tc), uint32(mem), uint8(th)
	k.CreatedAt = time.UnixMilli(created)
	return &k, nil
}

func keyArgs(k credstore.KeyRow) []any {
	return []any{k.Version, k.KDF, k.Salt, int64(k.Time), int64(k.MemoryKiB), int64(k.Threads), k.Verifier, k.CreatedAt.UnixMilli()}
}

// CredentialKey implements credstore.Storage.
func (db *DB) CredentialKey(ctx context.Context) (*credstore.KeyRow, error) {
	k, err := scanKeyRow(db.r.QueryRowContext(ctx, "SELECT "+keyCols+" FROM credential_key WHERE id = 1"))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credential key: %w", err)
	}
	return k, nil
}

// InitCredentialKey implements credstore.Storage.
func (db *DB) InitCredentialKey(ctx context.Context, k credstore.KeyRow) (*credstore.KeyRow, error) {
	var out *credstore.KeyRow
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO credential_key (id, "+keyCols+") VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
			keyArgs(k)...); err != nil {
			return err
		}
		var err error
		out, err = scanKeyRow(tx.QueryRowContext(ctx, "SELECT "+keyCols+" FROM credential_key WHERE id = 1"))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create credential key: %w", err)
	}
	return out, nil
}

// PutCredential implements credstore.Storage. The salt check and the write
// are one write transaction, as Rekey is: a passwd in another process
// comes wholly before or after.
func (db *DB) PutCredential(ctx context.Context, r credstore.Row, keySalt []byte) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var salt []byte
		if err := tx.QueryRowContext(ctx, "SELECT salt FROM credential_key WHERE id = 1").Scan(&salt); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return credstore.ErrMasterChanged
			}
			return err
		}
		if !bytes.Equal(salt, keySalt) {
			return credstore.ErrMasterChanged
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO credentials (host, alias, kind, value, updated_at_ms) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (host, kind) DO UPDATE SET alias = excluded.alias, value = excluded.value, updated_at_ms = excluded.updated_at_ms`,
			r.Host, r.Alias, string(r.Kind), r.Value, r.UpdatedAt.UnixMilli())
		return err
	})
	if errors.Is(err, credstore.ErrMasterChanged) {
		return err
	}
	if err != nil {
		return fmt.Errorf("save credential %s of %s: %w", r.Kind, r.Host, err)
	}
	return nil
}

func scanRow(s scanner, withValue bool) (credstore.Row, error) {
	var r credstore.Row
	var kind string
	var at int64
	var err error
	if withValue {
		err = s.Scan(&r.Host, &r.Alias, &kind, &at, &r.Value)
	} else {
		err = s.Scan(&r.Host, &r.Alias, &kind, &at)
	}
	r.Kind, r.UpdatedAt = sshdial.SecretKind(kind), time.UnixMilli(at)
	return r, err
}

// FindCredential implements credstore.Storage: the host's own row only.
func (db *DB) FindCredential(ctx context.Context, host string, kind sshdial.SecretKind) (*credstore.Row, error) {
	q := "SELECT host, alias, kind, updated_at_ms, value FROM credentials WHERE kind = ? AND host = ?"
	r, err := scanRow(db.r.QueryRowContext(ctx, q, string(kind), host), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find credential %s of %s: %w", kind, host, err)
	}
	return &r, nil
}

// ListCredentials implements credstore.Storage.
func (db *DB) ListCredentials(ctx context.Context) ([]credstore.Row, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT host, alias, kind, updated_at_ms FROM credentials ORDER BY host, kind")
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	var out []credstore.Row
	for rows.Next() {
		r, err := scanRow(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// DeleteCredentials implements credstore.Storage.
func (db *DB) DeleteCredentials(ctx context.Context, host string, kind sshdial.SecretKind) (int, error) {
	res, err := db.w.ExecContext(ctx, "DELETE FROM credentials WHERE (host = ? OR alias = ?) AND (? = '' OR kind = ?)",
		host, host, string(kind), string(kind))
	if err != nil {
		return 0, fmt.Errorf("delete credentials of %s: %w", host, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Rekey implements credstore.Storage: the key row and every value are read
// and replaced in one write transaction, so a crash or an error leaves the
// old key and values in place, and no value saved meanwhile is missed.
func (db *DB) Rekey(ctx context.Context, f func(old *credstore.KeyRow, rows []credstore.Row) (credstore.KeyRow, []credstore.Row, error)) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanKeyRow(tx.QueryRowContext(ctx, "SELECT "+keyCols+" FROM credential_key WHERE id = 1"))
		if errors.Is(err, sql.ErrNoRows) {
			old, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("rekey: read key row: %w", err)
		}
		rs, err := tx.QueryContext(ctx, "SELECT host, alias, kind, updated_at_ms, value FROM credentials ORDER BY host, kind")
		if err != nil {
			return fmt.Errorf("rekey: read values: %w", err)
		}
		var rows []credstore.Row
		for rs.Next() {
			r, err := scanRow(rs, true)
			if err != nil {
				rs.Close()
				return fmt.Errorf("rekey: read values: %w", err)
			}
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return fmt.Errorf("rekey: read values: %w", err)
		}
		nk, out, err := f(old, rows)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO credential_key (id, "+keyCols+") VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
			keyArgs(nk)...); err != nil {
			return fmt.Errorf("rekey: write key row: %w", err)
		}
		for _, r := range out {
			if _, err := tx.ExecContext(ctx, "UPDATE credentials SET value = ? WHERE host = ? AND kind = ?", r.Value, r.Host, string(r.Kind)); err != nil {
				return fmt.Errorf("rekey: write %s of %s: %w", r.Kind, r.Host, err)
			}
		}
		return nil
	})
}
