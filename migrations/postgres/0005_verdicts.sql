-- Verdicts kept side by side (issue 13): the file's own verdict and caplens' verifier's, per
-- rollout, with per-(run, problem) counts under each, so every view can switch between them.
-- Also what the file said about its run (tool, the tool's run identity, how the run ended).
-- Keep in step with the other backend.

-- The file's verdict (0/1; NULL: the file gave none).
ALTER TABLE rollouts ADD COLUMN file_correct INTEGER;
-- caplens' verifier: NULL no reference, 0 different, 1 equal, 2 unverifiable, 3 no answer found
-- (analysis::verdicts::CaplensVerdict::code).
ALTER TABLE rollouts ADD COLUMN caplens_verdict INTEGER;

-- c / first_correct_sample stay the run's default source; these are each source's (NULL on rows
-- written before this migration: the same as c / first_correct_sample).
ALTER TABLE run_problem_stats ADD COLUMN c_file INTEGER;
ALTER TABLE run_problem_stats ADD COLUMN first_correct_file INTEGER;
ALTER TABLE run_problem_stats ADD COLUMN c_caplens INTEGER;
ALTER TABLE run_problem_stats ADD COLUMN first_correct_caplens INTEGER;

-- 'file' or 'caplens': whose verdicts the run shows by default (analysis::verdicts).
ALTER TABLE runs ADD COLUMN default_verdicts TEXT;
-- JSON analysis::verdicts::VerdictTally: how the run's rollouts were graded, and agreement.
ALTER TABLE runs ADD COLUMN verdict_tally TEXT;
-- JSON ingest::SourceInfo: the writing tool, its run identity, its status, its verdict name.
ALTER TABLE runs ADD COLUMN source_info TEXT;
-- The tool's own identity of the run (e.g. inspect:<eval_id>), for duplicate detection across
-- container formats (.eval and .json of one Inspect run).
ALTER TABLE runs ADD COLUMN source_identity TEXT;
CREATE INDEX runs_source_identity ON runs(source_identity);
