-- Full-text search over problems (issue 27): the problems view searches prompts and keys with
-- an index, not a scan. Keep in step with migrations/sqlite/0011_problem_search.sql (there: an
-- FTS5 table; server/tests/schema.rs names this as an intended difference).
--
-- The 'simple' configuration (no stemming, no stop words: prompts are maths in many languages),
-- over the text with ASCII punctuation turned into spaces: PostgreSQL's parser would otherwise
-- read "demo-008" as "demo" and the number "-008", "3.5" as one number and "x^2" as one word,
-- where SQLite's FTS5 (and the query side, storage::search) see letters and digits split at
-- everything else. The vector is a stored generated column, so a search that matches most
-- problems reads it instead of computing it per row (measured: tests/bench, problem_search).
ALTER TABLE problems ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', regexp_replace(problem_key || ' ' || prompt, '[[:punct:]]+', ' ', 'g'))
) STORED;
CREATE INDEX problems_search ON problems USING GIN (search);
