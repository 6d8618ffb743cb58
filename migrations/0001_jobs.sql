-- 0001: jobs and their output.
--
-- Times are Unix milliseconds (NULL when not reached); for a human in sqlite3:
--   SELECT * FROM recent_jobs;
--   SELECT output FROM job_output WHERE job_id = '...';
--   SELECT id, state, datetime(created_at_ms/1000, 'unixepoch') FROM jobs;
--
-- The schema avoids syntax newer than SQLite 3.37 (STRICT tables), so that the
-- sqlite3 shipped by older distributions can still read this database.

-- Marks the file as an sshjobs database ('ssjb'), so that Open can tell it
-- from somebody else's SQLite file.
PRAGMA application_id = 1936943714;

CREATE TABLE jobs (
    id               TEXT    PRIMARY KEY NOT NULL,  -- UUIDv7
    host             TEXT    NOT NULL,              -- resolved user@host:port
    target           TEXT    NOT NULL DEFAULT '',   -- the host as the caller named it
    session          TEXT    NOT NULL,
    command          TEXT    NOT NULL,
    detached         INTEGER NOT NULL DEFAULT 0 CHECK (detached IN (0, 1)),
    sudo             INTEGER NOT NULL DEFAULT 0 CHECK (sudo IN (0, 1)),
    kill_after_ms    INTEGER NOT NULL DEFAULT 0,    -- 0: never
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'waiting_input',
                         'succeeded', 'failed', 'cancelled', 'lost', 'error')),
    exit_code        INTEGER,                       -- NULL: not exited, or killed by a signal
    signal           TEXT    NOT NULL DEFAULT '',
    error            TEXT    NOT NULL DEFAULT '',
    prompt_text      TEXT,                          -- NULL unless waiting for input
    prompt_kind      TEXT,
    cwd              TEXT    NOT NULL DEFAULT '',
    new_shell        INTEGER NOT NULL DEFAULT 0 CHECK (new_shell IN (0, 1)),
    owner            TEXT    NOT NULL DEFAULT '',   -- process that runs the job
    lease_until_ms   INTEGER,                       -- NULL counts as expired
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    attach           TEXT    NOT NULL DEFAULT '',   -- executor's re-attach data
    output_bytes     INTEGER NOT NULL DEFAULT 0,    -- all output produced, stored or not
    gap_start        INTEGER NOT NULL DEFAULT 0,    -- [gap_start, gap_end) dropped by the cap
    gap_end          INTEGER NOT NULL DEFAULT 0,
    created_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    ended_at_ms      INTEGER
) STRICT;

-- Claim: the oldest queued job of a session, and whether the session is busy.
CREATE INDEX jobs_claim ON jobs (host, session, state, created_at_ms);
-- Heartbeat and Adopt: the non-final jobs and their leases.
CREATE INDEX jobs_lease ON jobs (state, lease_until_ms);
-- List: newest first.
CREATE INDEX jobs_created ON jobs (created_at_ms);
-- Prune: final jobs that ended long ago.
CREATE INDEX jobs_ended ON jobs (ended_at_ms);

-- A job's output, as chunks that tile [0, output_bytes) except for the gap.
-- A read at any offset is one seek in the (job_id, offset) index. Not
-- WITHOUT ROWID: there every seek compares whole records, and a record with a
-- 32 KiB blob spills onto overflow pages that would all be read (measured: most
-- of the time of an insert). data comes last so that the other columns read
-- without touching its overflow pages.
CREATE TABLE output_chunks (
    job_id TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,  -- chunk number within the job
    offset INTEGER NOT NULL,  -- byte offset of data in the job's whole output
    at_ms  INTEGER NOT NULL,  -- when it arrived
    data   BLOB    NOT NULL,
    PRIMARY KEY (job_id, offset)
) STRICT;

-- The stored output of each job as text (without the part dropped by the cap,
-- see jobs.gap_start and gap_end). The chunks are concatenated in offset
-- order because GROUP BY job_id walks the (job_id, offset) index;
-- group_concat(... ORDER BY offset) would say so explicitly but needs SQLite
-- 3.44, and an ORDER BY in a subquery would stop "WHERE job_id = ?" from
-- reaching the index.
CREATE VIEW job_output (job_id, output) AS
    SELECT job_id, CAST(group_concat(data, '') AS TEXT)
    FROM output_chunks
    GROUP BY job_id;

-- The last 20 jobs, newest first, with times a person can read (UTC).
CREATE VIEW recent_jobs AS
    SELECT id, host, session, command, state, exit_code,
           CASE
               WHEN started_at_ms IS NULL THEN NULL
               WHEN ended_at_ms IS NULL
                   THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - started_at_ms
               ELSE ended_at_ms - started_at_ms
           END AS duration_ms,
           output_bytes,
           datetime(created_at_ms / 1000, 'unixepoch') AS created_at
    FROM jobs
    ORDER BY created_at_ms DESC, id DESC
    LIMIT 20;

-- Jobs that are not finished, oldest first, with their owner and lease.
CREATE VIEW active_jobs AS
    SELECT id, host, session, command, state, owner, cancel_requested, detached,
           prompt_text,
           datetime(lease_until_ms / 1000, 'unixepoch') AS lease_until,
           datetime(created_at_ms / 1000, 'unixepoch') AS created_at
    FROM jobs
    WHERE state IN ('queued', 'running', 'waiting_input')
    ORDER BY created_at_ms, id;
