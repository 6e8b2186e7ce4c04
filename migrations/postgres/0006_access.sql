-- Access control (issue 14): accounts, server-side sessions, projects with per-project roles,
-- API tokens owned by a user and a project with a scope, and the audit log.
-- Keep in step with the other backend.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,        -- sign-in name
    email         TEXT,
    display_name  TEXT,
    password_hash TEXT,                        -- argon2id PHC string; NULL: single sign-on only
    is_admin      BIGINT NOT NULL DEFAULT 0,  -- site admin: users and projects
    disabled_at   TEXT,
    oidc_subject  TEXT UNIQUE,                 -- "<issuer> <sub>" of a single sign-on account
    created_at    TEXT NOT NULL,
    last_login_at TEXT
);

-- A session is the SHA-256 of the cookie's secret: a stolen database does not sign anyone in.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,               -- idle expiry counts from here
    expires_at   TEXT NOT NULL,               -- absolute expiry
    address      TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE projects (
    id          BIGSERIAL PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    open_to_all BIGINT NOT NULL DEFAULT 0,   -- readable by every signed-in user
    created_at  TEXT NOT NULL
);

CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    added_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

INSERT INTO projects (slug, name, description, open_to_all, created_at) VALUES
    ('demo', 'Demo', 'Synthetic demo experiments, readable by everyone signed in.', 1, '2026-12-02T00:00:00Z'),
    ('default', 'Default', 'Everything stored before projects existed, and uploads that name no project.', 0, '2026-12-02T00:00:00Z');

-- What belongs to a project. Models are shared across projects.
ALTER TABLE experiments ADD COLUMN project_id BIGINT REFERENCES projects(id);
ALTER TABLE datasets ADD COLUMN project_id BIGINT REFERENCES projects(id);
ALTER TABLE runs ADD COLUMN project_id BIGINT REFERENCES projects(id);
ALTER TABLE imports ADD COLUMN project_id BIGINT REFERENCES projects(id);
ALTER TABLE evaluations ADD COLUMN project_id BIGINT REFERENCES projects(id);
-- NULL: an engine every project may use (the built-in embedded model, engines added by site
-- admins). Datasets likewise (see below).
ALTER TABLE engines ADD COLUMN project_id BIGINT REFERENCES projects(id);

UPDATE experiments SET project_id = (SELECT id FROM projects WHERE slug = CASE WHEN is_demo = 1 THEN 'demo' ELSE 'default' END);
UPDATE runs SET project_id = COALESCE(
    (SELECT MIN(e.project_id) FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id WHERE er.run_id = runs.id),
    (SELECT id FROM projects WHERE slug = 'default'));
-- A dataset with runs belongs to the project of its runs; one without (the built-in dataset,
-- datasets added from the command line) stays NULL: every project may use it.
UPDATE datasets SET project_id = (SELECT MIN(r.project_id) FROM runs r WHERE r.dataset_id = datasets.id);
UPDATE imports SET project_id = (SELECT id FROM projects WHERE slug = 'default');
UPDATE evaluations SET project_id = (SELECT id FROM projects WHERE slug = 'default');
CREATE INDEX experiments_project ON experiments (project_id);
CREATE INDEX runs_project ON runs (project_id);

-- Tokens belong to a user and a project, with a scope. Tokens made before accounts existed
-- (user_id NULL) work only in local mode.
ALTER TABLE api_tokens ADD COLUMN user_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN project_id BIGINT REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write' CHECK (scope IN ('read', 'write'));
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
UPDATE api_tokens SET project_id = (SELECT id FROM projects WHERE slug = 'default');

-- Who did what, when, from where. Secrets are never written here.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         TEXT NOT NULL,
    user_id    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    actor      TEXT NOT NULL,                 -- user name, "token <prefix> of <user>", "local", "anonymous"
    action     TEXT NOT NULL,                 -- sign_in, sign_in_failed, token_created, import, ...
    target     TEXT NOT NULL DEFAULT '',      -- what it acted on: "experiment demo-x", "user bob"
    project_id BIGINT REFERENCES projects(id) ON DELETE SET NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail     TEXT NOT NULL DEFAULT '',
    address    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
