-- Replicas and workers over one database (issue 17).
-- An import is leased by the process running it: `lease_owner` is that process's instance id
-- (`pid-PID-START-RANDOM@HOST`), `lease_until` the time until which it is held (RFC 3339,
-- extended by a heartbeat on PostgreSQL; NULL on SQLite, where every process is on one host and
-- a dead owner is seen from its pid). A `processing` import whose lease ran out, or whose owner
-- is known dead, is marked interrupted by whichever process sweeps first.
ALTER TABLE imports ADD COLUMN lease_owner TEXT;
ALTER TABLE imports ADD COLUMN lease_until TEXT;

-- Deployment-wide settings every replica reads (e.g. `blob_url`, recorded by
-- `caplens blobs migrate`).
CREATE TABLE settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
