-- Responses outside the rows (issue 16): an import writes each run's response texts into one
-- blob-store pack (runs.response_pack, beside its token-trace pack) and the rollout row keeps
-- the byte range, so the database holds numbers and keys only and bulk loads stay fast.
-- `rollouts.response` still holds the text of rows written before this migration and of the
-- demo; a row has one or the other. Keep in step with the other backend.
ALTER TABLE runs ADD COLUMN response_pack TEXT;
ALTER TABLE rollouts ADD COLUMN response_offset BIGINT;
ALTER TABLE rollouts ADD COLUMN response_length BIGINT;

-- Rollouts keep no foreign keys to runs and problems here: PostgreSQL checks each by a trigger
-- per row, which was 60 % of the time of a COPY into `rollouts`. The one writer of rollouts
-- (server/src/storage/bulk.rs) only writes rows of the run and problems it holds in the same
-- transaction, and every statement that deletes runs or problems deletes their rollouts first
-- (storage/review.rs, storage/bulk.rs). SQLite keeps the declared keys: it cannot drop a
-- constraint without rebuilding the table, its check costs little, and server/tests/schema.rs
-- names this as the one difference between the two schemas.
ALTER TABLE rollouts DROP CONSTRAINT IF EXISTS rollouts_run_id_fkey;
ALTER TABLE rollouts DROP CONSTRAINT IF EXISTS rollouts_problem_id_fkey;
