-- caplens schema v1 (PostgreSQL). Keep in step with migrations/sqlite/0001_initial.sql.
-- Conventions (both backends, see ARCHITECTURE.md "Schema"):
--   * integers are 64-bit; booleans are BIGINT 0/1 (the sqlx Any driver has no portable bool);
--   * timestamps are TEXT, RFC 3339 in UTC ("2026-11-26T16:31:07Z"), written by the server;
--   * JSON-valued columns (tags, quality flags detail) are TEXT holding JSON.

CREATE TABLE datasets (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE problems (
    id               BIGSERIAL PRIMARY KEY,
    dataset_id       BIGINT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    problem_key      TEXT NOT NULL,              -- the id users know ("aime24-7")
    prompt           TEXT NOT NULL,
    reference_answer TEXT NOT NULL,
    source           TEXT NOT NULL DEFAULT '',
    tags             TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    UNIQUE (dataset_id, problem_key)
);

CREATE TABLE models (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    family        TEXT NOT NULL DEFAULT '',
    stage         TEXT NOT NULL CHECK (stage IN ('base', 'sft', 'rl', 'tir', 'other')),
    parent_id     BIGINT REFERENCES models(id) ON DELETE SET NULL,
    training_step BIGINT,
    notes         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
);
CREATE INDEX models_parent ON models(parent_id);

CREATE TABLE experiments (
    id          BIGSERIAL PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_demo     BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id              BIGSERIAL PRIMARY KEY,
    model_id        BIGINT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    dataset_id      BIGINT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    label           TEXT NOT NULL DEFAULT '',
    temperature     DOUBLE PRECISION,
    top_p           DOUBLE PRECISION,
    max_tokens      BIGINT,
    n_per_problem   BIGINT,
    seed            BIGINT,
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
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    run_id        BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    PRIMARY KEY (experiment_id, run_id)
);
CREATE INDEX experiment_runs_run ON experiment_runs(run_id);

CREATE TABLE rollouts (
    id               BIGSERIAL PRIMARY KEY,
    run_id           BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    problem_id       BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    sample_index     BIGINT NOT NULL,
    response         TEXT,
    extracted_answer TEXT,
    correct          BIGINT NOT NULL,
    token_count      BIGINT,
    finish_reason    TEXT,
    mean_entropy     DOUBLE PRECISION,
    mean_rbf         DOUBLE PRECISION,
    perplexity       DOUBLE PRECISION,
    quality_flags    BIGINT NOT NULL DEFAULT 0, -- bit set, see server/src/storage/catalog.rs QualityFlags
    trace_key        TEXT,                       -- blob-store key of the token trace, if any
    UNIQUE (run_id, problem_id, sample_index)
);
CREATE INDEX rollouts_problem ON rollouts(problem_id);

-- Per (run, problem) aggregates, written when rollouts are stored, so pages never rescan rollouts.
CREATE TABLE run_problem_stats (
    run_id               BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    problem_id           BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    n                    BIGINT NOT NULL,
    c                    BIGINT NOT NULL,
    first_correct_sample BIGINT,            -- smallest sample index of a correct rollout
    distinct_answers     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, problem_id)
);
