-- Full-text search over problems (issue 27): the problems view searches prompts and keys with
-- an index, not a scan. Keep in step with migrations/sqlite/0011_problem_search.sql (there: an
-- FTS5 table; server/tests/schema.rs names this as an intended difference).
--
-- The 'simple' configuration (no stemming, no stop words: prompts are maths in many languages),
-- over the text with ASCII punctuation turned into spaces: PostgreSQL's parser would otherwise
-- read "demo-008" as "demo" and the number "-008", "3.5" as one number and "x^2" as one word,
-- where SQLite's FTS5 (and the query side, storage::search) see letters and digits split at
-- everything else. The query side uses exactly this expression so the index is used.
CREATE INDEX problems_search ON problems
    USING GIN (to_tsvector('simple', regexp_replace(problem_key || ' ' || prompt, '[[:punct:]]+', ' ', 'g')));
