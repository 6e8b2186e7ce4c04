-- Responses outside the rows (issue 16): an import writes each run's response texts into one
-- blob-store pack (runs.response_pack, beside its token-trace pack) and the rollout row keeps
-- the byte range, so the database holds numbers and keys only and bulk loads stay fast.
-- `rollouts.response` still holds the text of rows written before this migration and of the
-- demo; a row has one or the other. Keep in step with the other backend.
ALTER TABLE runs ADD COLUMN response_pack TEXT;
ALTER TABLE rollouts ADD COLUMN response_offset BIGINT;
ALTER TABLE rollouts ADD COLUMN response_length BIGINT;
