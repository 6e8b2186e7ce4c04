-- Reviewers who can disagree (issue 27). Keep in step with migrations/sqlite/0012_judgements.sql.
--
-- Any reviewer records an independent judgement on an answer cluster (a normalised final answer
-- of a problem) or on one rollout; one per reviewer and target (a second replaces the first).
-- Where every judgement on a target agrees, that is the reviewers' verdict (counted by
-- reviewed=1 unless an editor's verdict override decides the target); where they differ, the
-- target waits in the review queue until an editor decides. A project may make judging blind:
-- a reviewer then sees only their own judgements.
ALTER TABLE projects ADD COLUMN blind_review BIGINT NOT NULL DEFAULT 0;

CREATE TABLE judgements (
    id            BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    problem_id    BIGINT NOT NULL REFERENCES problems(id) ON DELETE CASCADE,
    rollout_id    BIGINT REFERENCES rollouts(id) ON DELETE CASCADE,
    answer        TEXT,
    reviewer      TEXT NOT NULL,
    verdict       BIGINT NOT NULL CHECK (verdict IN (0, 1)),
    created_at    TEXT NOT NULL,
    CHECK ((rollout_id IS NULL) <> (answer IS NULL))
);
CREATE INDEX judgements_experiment ON judgements (experiment_id, problem_id);
