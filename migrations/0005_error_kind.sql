-- 0005: why a job ended `error`, as a word a caller can act on: 'auth',
-- 'host_key', 'connect', 'internal'; '' when the error text says it all.
ALTER TABLE jobs ADD COLUMN error_kind TEXT NOT NULL DEFAULT '';
