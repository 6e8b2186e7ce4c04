-- Projects are tenants (issue 25). Keep in step with migrations/sqlite/0010_tenants.sql.
--
-- Datasets (and so their problems) and models belong to one project; their names are unique
-- within a project. A row with no project is shared, explicitly: the built-in evaluation
-- dataset (source 'builtin') and engines a site admin made for every project; shared rows are
-- read by everyone signed in and changed by nobody but the operator.
--
-- Existing rows are assigned to the projects that use them (a dataset: the projects of its runs
-- and evaluations; a model: the projects of its runs, and of its descendants' runs); a row used
-- by several projects is split into one per project, and every row of a project is repointed
-- to its own copy (runs, rollouts, per-problem statistics, evaluation units and samples, and the
-- review data of the project's experiments).
--
-- Here the old UNIQUE (name) constraints are dropped and (project_id, name) ones added; SQLite
-- rebuilds its tables instead.
--
-- Also: projects may let their admins add engines (engine_admins), and rate-limit events live
-- in the database (rate_events), so every replica counts the same sign-ins and uploads.

-- ---------------------------------------------------------------------------- datasets
CREATE TEMP TABLE t_dataset_use AS
    SELECT DISTINCT dataset_id, project_id FROM runs WHERE project_id IS NOT NULL
    UNION SELECT dataset_id, project_id FROM evaluations WHERE project_id IS NOT NULL
    UNION SELECT id, project_id FROM datasets WHERE project_id IS NOT NULL;
DELETE FROM t_dataset_use WHERE dataset_id IN (SELECT id FROM datasets WHERE source = 'builtin');

-- Each dataset's own project: the one it has, else the first that uses it, else `default`.
CREATE TEMP TABLE t_dataset_owner AS
    SELECT d.id AS dataset_id,
           COALESCE(d.project_id,
                    (SELECT MIN(u.project_id) FROM t_dataset_use u WHERE u.dataset_id = d.id),
                    (SELECT id FROM projects WHERE slug = 'default')) AS project_id
    FROM datasets d WHERE d.source <> 'builtin';

ALTER TABLE datasets DROP CONSTRAINT IF EXISTS datasets_name_key;
UPDATE datasets SET project_id = (SELECT o.project_id FROM t_dataset_owner o WHERE o.dataset_id = datasets.id)
    WHERE id IN (SELECT dataset_id FROM t_dataset_owner);
ALTER TABLE datasets ADD CONSTRAINT datasets_project_id_name_key UNIQUE (project_id, name);
-- Shared rows have no project; their names are unique among themselves.
CREATE UNIQUE INDEX datasets_shared_name ON datasets (name) WHERE project_id IS NULL;

-- One copy per other project that uses a dataset, with copies of its problems.
CREATE TEMP TABLE t_dataset_copy AS
    SELECT u.dataset_id AS old_id, u.project_id
    FROM t_dataset_use u JOIN t_dataset_owner o ON o.dataset_id = u.dataset_id
    WHERE u.project_id <> o.project_id;
INSERT INTO datasets (name, description, source, created_at, project_id)
    SELECT d.name, d.description, d.source, d.created_at, c.project_id
    FROM t_dataset_copy c JOIN datasets d ON d.id = c.old_id;
CREATE TEMP TABLE t_dataset_map AS
    SELECT c.old_id, c.project_id, n.id AS new_id
    FROM t_dataset_copy c JOIN datasets o ON o.id = c.old_id
    JOIN datasets n ON n.name = o.name AND n.project_id = c.project_id;
INSERT INTO problems (dataset_id, problem_key, prompt, reference_answer, source, tags)
    SELECT m.new_id, p.problem_key, p.prompt, p.reference_answer, p.source, p.tags
    FROM problems p JOIN t_dataset_map m ON m.old_id = p.dataset_id;
CREATE TEMP TABLE t_problem_map AS
    SELECT p.id AS old_id, m.project_id, q.id AS new_id
    FROM problems p JOIN t_dataset_map m ON m.old_id = p.dataset_id
    JOIN problems q ON q.dataset_id = m.new_id AND q.problem_key = p.problem_key;
CREATE UNIQUE INDEX t_problem_map_old ON t_problem_map (old_id, project_id);

-- Each project's rows to its own copy.
UPDATE runs SET dataset_id = (SELECT m.new_id FROM t_dataset_map m
                              WHERE m.old_id = runs.dataset_id AND m.project_id = runs.project_id)
    WHERE EXISTS (SELECT 1 FROM t_dataset_map m WHERE m.old_id = runs.dataset_id AND m.project_id = runs.project_id);
UPDATE evaluations SET dataset_id = (SELECT m.new_id FROM t_dataset_map m
                                     WHERE m.old_id = evaluations.dataset_id AND m.project_id = evaluations.project_id)
    WHERE EXISTS (SELECT 1 FROM t_dataset_map m
                  WHERE m.old_id = evaluations.dataset_id AND m.project_id = evaluations.project_id);
UPDATE rollouts SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN runs r ON r.id = rollouts.run_id
                                  WHERE pm.old_id = rollouts.problem_id AND pm.project_id = r.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN runs r ON r.id = rollouts.run_id
                  WHERE pm.old_id = rollouts.problem_id AND pm.project_id = r.project_id);
UPDATE run_problem_stats SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN runs r ON r.id = run_problem_stats.run_id
                                           WHERE pm.old_id = run_problem_stats.problem_id AND pm.project_id = r.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN runs r ON r.id = run_problem_stats.run_id
                  WHERE pm.old_id = run_problem_stats.problem_id AND pm.project_id = r.project_id);
UPDATE eval_units SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN evaluations e ON e.id = eval_units.evaluation_id
                                    WHERE pm.old_id = eval_units.problem_id AND pm.project_id = e.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN evaluations e ON e.id = eval_units.evaluation_id
                  WHERE pm.old_id = eval_units.problem_id AND pm.project_id = e.project_id);
UPDATE eval_samples SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN evaluations e ON e.id = eval_samples.evaluation_id
                                      WHERE pm.old_id = eval_samples.problem_id AND pm.project_id = e.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN evaluations e ON e.id = eval_samples.evaluation_id
                  WHERE pm.old_id = eval_samples.problem_id AND pm.project_id = e.project_id);
UPDATE problem_labels SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN experiments x ON x.id = problem_labels.experiment_id
                                        WHERE pm.old_id = problem_labels.problem_id AND pm.project_id = x.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN experiments x ON x.id = problem_labels.experiment_id
                  WHERE pm.old_id = problem_labels.problem_id AND pm.project_id = x.project_id);
UPDATE verdict_overrides SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN experiments x ON x.id = verdict_overrides.experiment_id
                                           WHERE pm.old_id = verdict_overrides.problem_id AND pm.project_id = x.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN experiments x ON x.id = verdict_overrides.experiment_id
                  WHERE pm.old_id = verdict_overrides.problem_id AND pm.project_id = x.project_id);
UPDATE comment_threads SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN experiments x ON x.id = comment_threads.experiment_id
                                         WHERE pm.old_id = comment_threads.problem_id AND pm.project_id = x.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN experiments x ON x.id = comment_threads.experiment_id
                  WHERE pm.old_id = comment_threads.problem_id AND pm.project_id = x.project_id);
UPDATE review_assignments SET problem_id = (SELECT pm.new_id FROM t_problem_map pm JOIN experiments x ON x.id = review_assignments.experiment_id
                                            WHERE pm.old_id = review_assignments.problem_id AND pm.project_id = x.project_id)
    WHERE EXISTS (SELECT 1 FROM t_problem_map pm JOIN experiments x ON x.id = review_assignments.experiment_id
                  WHERE pm.old_id = review_assignments.problem_id AND pm.project_id = x.project_id);

-- ------------------------------------------------------------------------------ models
-- A model is needed in the projects of its runs and of its descendants' runs (a lineage
-- stays whole within a project).
CREATE TEMP TABLE t_model_use AS
    WITH RECURSIVE need (model_id, project_id) AS (
        SELECT DISTINCT model_id, project_id FROM runs WHERE project_id IS NOT NULL
        UNION
        SELECT m.parent_id, n.project_id FROM need n JOIN models m ON m.id = n.model_id
        WHERE m.parent_id IS NOT NULL
    )
    SELECT model_id, project_id FROM need;
CREATE TEMP TABLE t_model_owner AS
    SELECT m.id AS model_id,
           COALESCE((SELECT MIN(u.project_id) FROM t_model_use u WHERE u.model_id = m.id),
                    (SELECT id FROM projects WHERE slug = 'default')) AS project_id
    FROM models m;

ALTER TABLE models DROP CONSTRAINT IF EXISTS models_name_key;
ALTER TABLE models ADD COLUMN project_id BIGINT REFERENCES projects(id);
UPDATE models SET project_id = (SELECT o.project_id FROM t_model_owner o WHERE o.model_id = models.id);
ALTER TABLE models ADD CONSTRAINT models_project_id_name_key UNIQUE (project_id, name);
CREATE UNIQUE INDEX models_shared_name ON models (name) WHERE project_id IS NULL;

CREATE TEMP TABLE t_model_copy AS
    SELECT u.model_id AS old_id, u.project_id
    FROM t_model_use u JOIN t_model_owner o ON o.model_id = u.model_id
    WHERE u.project_id <> o.project_id;
INSERT INTO models (name, family, stage, parent_id, training_step, notes, created_at, project_id)
    SELECT m.name, m.family, m.stage, NULL, m.training_step, m.notes, m.created_at, c.project_id
    FROM t_model_copy c JOIN models m ON m.id = c.old_id;
-- Every model row by (original model, project): the original in its own project, the copies.
CREATE TEMP TABLE t_model_rows AS
    SELECT model_id AS orig_id, project_id, model_id AS row_id FROM t_model_owner
    UNION ALL
    SELECT c.old_id, c.project_id, n.id
    FROM t_model_copy c JOIN models o ON o.id = c.old_id
    JOIN models n ON n.name = o.name AND n.project_id = c.project_id;
CREATE UNIQUE INDEX t_model_rows_orig ON t_model_rows (orig_id, project_id);
-- Parents within the row's own project.
CREATE TEMP TABLE t_model_parent AS
    SELECT me.row_id, pr.row_id AS parent_row
    FROM t_model_rows me JOIN models o ON o.id = me.orig_id
    LEFT JOIN t_model_rows pr ON pr.orig_id = o.parent_id AND pr.project_id = me.project_id;
UPDATE models SET parent_id = (SELECT p.parent_row FROM t_model_parent p WHERE p.row_id = models.id);
UPDATE runs SET model_id = (SELECT r.row_id FROM t_model_rows r WHERE r.orig_id = runs.model_id AND r.project_id = runs.project_id)
    WHERE EXISTS (SELECT 1 FROM t_model_rows r WHERE r.orig_id = runs.model_id AND r.project_id = runs.project_id);

-- ----------------------------------------------------------------------------- engines
ALTER TABLE engines DROP CONSTRAINT IF EXISTS engines_name_key;
ALTER TABLE engines ADD CONSTRAINT engines_project_id_name_key UNIQUE (project_id, name);
CREATE UNIQUE INDEX engines_shared_name ON engines (name) WHERE project_id IS NULL;

-- ---------------------------------------------------------------------- the rest
-- A project may let its admins add and change its engines (by default only site admins may:
-- an engine makes the server open connections).
ALTER TABLE projects ADD COLUMN engine_admins BIGINT NOT NULL DEFAULT 0;

-- Rate-limit events (sign-ins per address and account, uploads and evaluation starts per
-- token), counted by every replica alike.
CREATE TABLE rate_events (
    id     BIGSERIAL PRIMARY KEY,
    bucket TEXT NOT NULL,
    at_ms  BIGINT NOT NULL
);
CREATE INDEX rate_events_bucket ON rate_events (bucket, at_ms);
CREATE INDEX rate_events_at ON rate_events (at_ms);

-- Runs are written with their project (decided in the import's transaction).
CREATE INDEX runs_dataset ON runs (dataset_id);

DROP TABLE t_dataset_use;
DROP TABLE t_dataset_owner;
DROP TABLE t_dataset_copy;
DROP TABLE t_dataset_map;
DROP TABLE t_problem_map;
DROP TABLE t_model_use;
DROP TABLE t_model_owner;
DROP TABLE t_model_copy;
DROP TABLE t_model_rows;
DROP TABLE t_model_parent;

