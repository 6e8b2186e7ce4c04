-- caplens schema v1 (SQLite). Keep in step with migrations/postgres/0001_initial.sql.
-- Conventions (both backends, see ARCHITECTURE.md "Schema"):
--   * integers are 64-bit; booleans are INTEGER 0/1 (the sqlx Any driver has no portable bool);
--   * timestamps are TEXT, RFC 3339 in UTC ("2026-11-26T16:31:07Z"), written by the server;
--   * JSON-valued columns (tags, quality flags detail) are TEXT holding JSON.

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE problems (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id       INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    problem_key      TEXT NOT NULL,              -- the id users know ("aime24-7")
    prompt           TEXT NOT NULL,
    reference_answer TEXT NOT NULL,
    source           TEXT NOT NULL DEFAULT '',
    tags             TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    UNIQUE (dataset_id, problem_key)
);

CREATE TABLE models (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    family        TEXT NOT NULL DEFAULT '',
    stage         TEXT NOT NULL CHECK (stage IN ('base', 'sft', 'rl', 'tir', 'other')),
    parent_id     INTEGER REFERENCES models(id) ON DELETE SET NULL,
    training_step INTEGER,
    notes         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
);
CREATE INDEX models_parent ON models(parent_id);

CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_demo     INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id        INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    dataset_id      INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    label           TEXT NOT NULL DEFAULT '',
    temperature     REAL,
    top_p           REAL,
    max_tokens      INTEGER,
    n_per_problem   INTEGER,
    seed            INTEGER,
    prompt_template TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'importing', 'completed', 'failed', 'cancelled')),
    origin          TEXT NOT NULL CHECK (origin IN ('upload', 'triggered', 'demo')),
    error           TEXT,
    created_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX runs_model ON runs(model_id);

-- An experiment is a named set of runs; a run may appear in several experiments.
CREATE TABLE experiment_runs (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    run_id        INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    PRIMARY KEY (experiment_id, run_id)
);
CREATE INDEX experiment_runs_run ON experiment_runs(run_id);

CREATE TABLE rollouts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    problem_id       INTEGER NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    sample_index     INTEGER NOT NULL,
    response         TEXT,
    extracted_answer TEXT,
    correct          INTEGER NOT NULL,
    token_count      INTEGER,
    finish_reason    TEXT,
    mean_entropy     REAL,
    mean_rbf         REAL,
    perplexity       REAL,
    quality_flags    INTEGER NOT NULL DEFAULT 0, -- bit set, see server/src/storage/catalog.rs QualityFlags
    trace_key        TEXT,                       -- blob-store key of the token trace, if any
    UNIQUE (run_id, problem_id, sample_index)
);
CREATE INDEX rollouts_problem ON rollouts(problem_id);

-- Per (run, problem) aggregates, written when rollouts are stored, so pages never rescan rollouts.
CREATE TABLE run_problem_stats (
    run_id               INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    problem_id           INTEGER NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    n                    INTEGER NOT NULL,
    c                    INTEGER NOT NULL,
    first_correct_sample INTEGER,            -- smallest sample index of a correct rollout
    distinct_answers     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, problem_id)
);
