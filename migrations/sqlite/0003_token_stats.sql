-- Per-run token statistics (issue 6: token statistics and training-dynamics pages). Keep in step
-- with the other backend.
-- JSON of caplens_analysis::token_stats::TokenStats, written in the same transaction as the
-- run's rollouts (demo load, import); NULL when no rollout of the run carries token-level data.
ALTER TABLE runs ADD COLUMN token_stats TEXT;
