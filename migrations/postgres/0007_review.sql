-- Team review (issue 15): comment threads, review labels, verdict overrides, assignments of the
-- review queue, and read-only share links. Everything hangs off an experiment and goes with it.
-- Keep in step with the other backend.

-- Viewers of a project may comment and label only when its admins allow it.
ALTER TABLE projects ADD COLUMN viewers_comment BIGINT NOT NULL DEFAULT 0;
-- Bumped by every override change: cached views of the experiment are rebuilt (views.rs stamp).
ALTER TABLE experiments ADD COLUMN review_version BIGINT NOT NULL DEFAULT 0;

-- A thread on an experiment, a problem (of the experiment), a rollout, or one token position of
-- a rollout. problem_id is set for every kind but 'experiment' (the problem page lists all).
CREATE TABLE comment_threads (
    id            BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('experiment', 'problem', 'rollout', 'token')),
    problem_id    BIGINT REFERENCES problems(id) ON DELETE CASCADE,
    rollout_id    BIGINT REFERENCES rollouts(id) ON DELETE CASCADE,
    token_index   BIGINT,
    created_at    TEXT NOT NULL,
    created_by    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    resolved_at   TEXT,
    resolved_by   TEXT
);
CREATE INDEX comment_threads_experiment ON comment_threads (experiment_id);
CREATE INDEX comment_threads_rollout ON comment_threads (rollout_id);

-- body is the author's markdown; body_html the sanitised rendering (review::markdown).
CREATE TABLE comments (
    id          BIGSERIAL PRIMARY KEY,
    thread_id   BIGINT NOT NULL REFERENCES comment_threads(id) ON DELETE CASCADE,
    author_id   BIGINT REFERENCES users(id) ON DELETE SET NULL,
    author_name TEXT NOT NULL,
    body        TEXT NOT NULL,
    body_html   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    edited_at   TEXT,
    deleted_at  TEXT
);
CREATE INDEX comments_thread ON comments (thread_id);

CREATE TABLE comment_mentions (
    comment_id BIGINT NOT NULL REFERENCES comments(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (comment_id, user_id)
);
CREATE INDEX comment_mentions_user ON comment_mentions (user_id);

-- Labels a project admin defines, beside the built-in ones (review::BUILTIN_LABELS).
CREATE TABLE review_labels (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    colour     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE problem_labels (
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    set_by        TEXT NOT NULL,
    set_at        TEXT NOT NULL,
    PRIMARY KEY (experiment_id, problem_id, label)
);

-- A reviewer's verdict: one rollout (rollout_id) or every rollout of the problem whose
-- normalised final answer equals `answer`. verdict 1 correct, 0 wrong. A third verdict source on
-- top of the file's and caplens' (docs/review.md).
CREATE TABLE verdict_overrides (
    id            BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    rollout_id    BIGINT REFERENCES rollouts(id) ON DELETE CASCADE,
    answer        TEXT,
    verdict       BIGINT NOT NULL CHECK (verdict IN (0, 1)),
    reason        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    CHECK ((rollout_id IS NULL) <> (answer IS NULL))
);
CREATE INDEX verdict_overrides_experiment ON verdict_overrides (experiment_id, problem_id);

CREATE TABLE review_assignments (
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    assigned_by   TEXT NOT NULL,
    assigned_at   TEXT NOT NULL,
    PRIMARY KEY (experiment_id, problem_id)
);

-- A read-only link to one view of one experiment for someone without an account. Only the
-- SHA-256 of the link's secret is kept.
CREATE TABLE share_links (
    id             BIGSERIAL PRIMARY KEY,
    experiment_id  BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    secret_hash    TEXT NOT NULL UNIQUE,
    path           TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT,
    revoked_at     TEXT,
    opened         BIGINT NOT NULL DEFAULT 0,
    last_opened_at TEXT
);
CREATE INDEX share_links_experiment ON share_links (experiment_id);
