-- 0002: where a job runs, output that could not be stored, and the processes
-- that own jobs.

-- The destination the job was resolved to when it was accepted (JSON: user,
-- hostname, port, route and trust settings). A job runs on what this says or
-- not at all. Empty for jobs accepted before 0002.
ALTER TABLE jobs ADD COLUMN destination TEXT NOT NULL DEFAULT '';

-- Bytes of output that could not be stored (a failed commit), recorded as
-- holes so that later output still fits. 0: everything produced was stored
-- (apart from the cap's gap).
ALTER TABLE jobs ADD COLUMN output_lost INTEGER NOT NULL DEFAULT 0;

-- Processes that run jobs, with their own heartbeat: a job is taken from its
-- owner only when the owner is known to be gone: its row is missing (it
-- stopped cleanly), or its heartbeat is older than a grace much longer than a
-- lease and, on the same host, its pid is not alive. proc_start tells the
-- process from a later one that got the same pid (Linux: boot id and start
-- time in clock ticks; '' where it cannot be read).
CREATE TABLE owners (
    id            TEXT    PRIMARY KEY NOT NULL,  -- the jobs.owner value
    hostname      TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    proc_start    TEXT    NOT NULL DEFAULT '',
    started_at_ms INTEGER NOT NULL,
    heartbeat_ms  INTEGER NOT NULL
) STRICT;
