-- Evaluation runs (issue 7): engines, queued evaluations, their work units and staged samples.
-- Keep in step with migrations/sqlite/0004_evaluations.sql.

-- Inference endpoints. API keys stay in this table: the API and the pages never return them.
CREATE TABLE engines (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('embedded', 'openai')),
    base_url         TEXT NOT NULL DEFAULT '',
    model            TEXT NOT NULL DEFAULT '',
    api_mode         TEXT NOT NULL DEFAULT 'completions' CHECK (api_mode IN ('completions', 'chat')),
    api_key          TEXT,
    max_top_logprobs BIGINT NOT NULL DEFAULT 20,
    created_at       TEXT NOT NULL
);
-- The embedded CPU engine is always there, so a new user can run an evaluation with no set-up.
INSERT INTO engines (name, kind, model, api_mode, max_top_logprobs, created_at)
VALUES ('embedded', 'embedded', 'SmolLM2-135M-Instruct', 'chat', 20, '2026-11-27T00:00:00Z');

-- One evaluation: one engine x one dataset x sampling settings, producing one run.
CREATE TABLE evaluations (
    id             BIGSERIAL PRIMARY KEY,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finalizing', 'completed', 'failed', 'cancelled')),
    engine_id      BIGINT NOT NULL REFERENCES engines(id),
    dataset_id     BIGINT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    experiment     TEXT NOT NULL,              -- slug the run joins
    model_name     TEXT NOT NULL,              -- the model the run is recorded under
    stage          TEXT NOT NULL,
    parent         TEXT,
    step           BIGINT,                    -- training step of a checkpoint series member
    series         TEXT,                       -- checkpoint series the evaluation belongs to
    settings       TEXT NOT NULL,              -- JSON server::evals::EvalSettings
    problems       BIGINT NOT NULL,
    samples_total  BIGINT NOT NULL,
    error          TEXT,
    lease_owner    TEXT,                       -- worker finalizing it
    lease_until    TEXT,
    run_id         BIGINT REFERENCES runs(id) ON DELETE SET NULL,
    import_id      TEXT,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT
);
CREATE INDEX evaluations_status ON evaluations(status);

-- Work units: one problem of one evaluation (its n samples). Workers claim units with a lease;
-- an expired lease (a killed worker) makes the unit claimable again.
CREATE TABLE eval_units (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,            -- order in the dataset
    status        TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'done')),
    worker        TEXT,
    lease_until   TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    PRIMARY KEY (evaluation_id, problem_id)
);
CREATE INDEX eval_units_claim ON eval_units(status, evaluation_id, position);

-- Samples generated so far, graded, as native JSON Lines records; the primary key makes every
-- (evaluation, problem, sample) exist once, whatever crashes. When all units are done the records
-- go through the import pipeline into a run, and these rows are deleted.
CREATE TABLE eval_samples (
    evaluation_id BIGINT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL,
    sample_index  BIGINT NOT NULL,
    correct       BIGINT NOT NULL,
    tokens        BIGINT NOT NULL,
    record        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (evaluation_id, problem_id, sample_index)
);

-- Token interventions (paper eqs. 5-6) on stored rollouts: a job per rollout, run by the same
-- workers. Results go into the rollout's token trace (impacts column) and the run's token
-- statistics; the job keeps the per-position counts.
CREATE TABLE interventions (
    id          BIGSERIAL PRIMARY KEY,
    rollout_id  BIGINT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
    engine_id   BIGINT NOT NULL REFERENCES engines(id),
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    request     TEXT NOT NULL,              -- JSON server::evals::interventions::InterventionRequest
    result      TEXT,                       -- JSON list of per-position outcomes
    error       TEXT,
    worker      TEXT,
    lease_until TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX interventions_status ON interventions(status);

-- When a run's stored data last changed after it completed (interventions rewrite its token
-- statistics); part of the view cache's stamp.
ALTER TABLE runs ADD COLUMN updated_at TEXT;
