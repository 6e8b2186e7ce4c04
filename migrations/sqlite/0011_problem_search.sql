-- Full-text search over problems (issue 27): the problems view searches prompts and keys with
-- an index, not a scan. Keep in step with migrations/postgres/0011_problem_search.sql (there: a
-- GIN index over the same text; server/tests/schema.rs names this as an intended difference).
--
-- An FTS5 table with external content (the rows stay in `problems`), kept in step by triggers;
-- tokenizer unicode61 (letters and digits of every script, case folded, diacritics removed).
CREATE VIRTUAL TABLE problems_fts USING fts5(
    problem_key, prompt,
    content = 'problems', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER problems_fts_insert AFTER INSERT ON problems BEGIN
    INSERT INTO problems_fts (rowid, problem_key, prompt) VALUES (new.id, new.problem_key, new.prompt);
END;

CREATE TRIGGER problems_fts_delete AFTER DELETE ON problems BEGIN
    INSERT INTO problems_fts (problems_fts, rowid, problem_key, prompt)
        VALUES ('delete', old.id, old.problem_key, old.prompt);
END;

CREATE TRIGGER problems_fts_update AFTER UPDATE OF problem_key, prompt ON problems BEGIN
    INSERT INTO problems_fts (problems_fts, rowid, problem_key, prompt)
        VALUES ('delete', old.id, old.problem_key, old.prompt);
    INSERT INTO problems_fts (rowid, problem_key, prompt) VALUES (new.id, new.problem_key, new.prompt);
END;

INSERT INTO problems_fts (problems_fts) VALUES ('rebuild');
