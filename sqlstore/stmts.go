package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache prepares each distinct query once per pool. Parsing the SQL cost
// more than running it for the small queries of a job's life (half of the
// engine's time per job in BenchmarkJobOverhead), and the set of queries is
// small: the dynamic ones vary only by the columns an Update sets.
type stmtCache struct {
	db *sql.DB // statements never run in a transaction: on the writer, that
	// would hold the only connection that preparing needs

	wrote func() // called after each Exec that succeeded (nil: none)

	mu sync.Mutex // protects m
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

func (c *stmtCache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st := c.m[query]
	c.mu.Unlock()
	if st == nil {
		var err error
		if st, err = c.db.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if old := c.m[query]; old != nil {
			st.Close()
			st = old
		} else {
			c.m[query] = st
		}
		c.mu.Unlock()
	}
	return st, nil
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err == nil && c.wrote != nil {
		c.wrote()
	}
	return res, err
}

// QueryRowContext is sql.DB's: an error comes back from Scan.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) scanner {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}
