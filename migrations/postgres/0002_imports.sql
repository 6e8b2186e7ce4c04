-- Imports, API tokens and stored aggregates (issue 5). Keep in step with the other backend.

-- One upload (REST, browser or CLI). Progress lives in memory while it runs; this row holds the
-- request and, once finished, the result. An import's runs, rollouts, problems and aggregates
-- are written in one transaction together with its final status, so they appear all at once.
CREATE TABLE imports (
    id            TEXT PRIMARY KEY,            -- "imp_" + random, handed out before the row exists
    status        TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed', 'duplicate')),
    format        TEXT,
    files         TEXT NOT NULL DEFAULT '[]',  -- JSON [{"name", "bytes", "sha256"}]
    params        TEXT NOT NULL DEFAULT '{}',  -- JSON of the metadata given
    content_hash  TEXT NOT NULL,               -- sha256 over the files' sha256s, in order
    bytes_total   BIGINT NOT NULL DEFAULT 0,
    rows_read     BIGINT NOT NULL DEFAULT 0,
    rows_stored   BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    errors        TEXT NOT NULL DEFAULT '[]',  -- JSON: the first rejected rows' errors
    runs          TEXT NOT NULL DEFAULT '[]',  -- JSON: the runs created
    message       TEXT,                        -- why it failed, or what it duplicates
    duplicate_of  TEXT,  
    token_id      BIGINT,                        -- the API token that made it, if any
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX imports_hash ON imports(content_hash);

-- Bearer tokens for the REST API. Only a SHA-256 of the secret is kept; the secret is shown
-- once, at creation.
CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,          -- the first characters, to recognise a token in lists
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Which import made a run, and the content hash that makes re-uploads idempotent.
ALTER TABLE runs ADD COLUMN import_id TEXT REFERENCES imports(id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN source_hash TEXT;
-- JSON of the run's stored aggregates (summary totals, pass@k curve), written at import.
ALTER TABLE runs ADD COLUMN aggregates TEXT;
CREATE INDEX runs_source ON runs(model_id, source_hash);

-- Rollout order and answers per (run, problem), for unsolvable-at-k and answer diversity
-- without rereading rollouts. first_correct_sample (0001) now holds the 0-based position of the
-- first correct rollout in sampling order; order_known is 0 when count-only data contributed.
ALTER TABLE run_problem_stats ADD COLUMN position BIGINT NOT NULL DEFAULT 0; -- first-appearance order in the run
ALTER TABLE run_problem_stats ADD COLUMN order_known BIGINT NOT NULL DEFAULT 1;
ALTER TABLE run_problem_stats ADD COLUMN answers TEXT NOT NULL DEFAULT '{}'; -- JSON {normalised answer: count}

-- Token traces of a run live in one pack file per (import, run); a rollout's trace is the byte
-- range [trace_offset, trace_offset + trace_length) of the blob trace_key.
ALTER TABLE rollouts ADD COLUMN trace_offset BIGINT;
ALTER TABLE rollouts ADD COLUMN trace_length BIGINT;
