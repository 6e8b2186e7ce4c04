//! The SQLite and PostgreSQL migrations describe the same schema (`storage/` promises it): the
//! same tables, columns (types up to dialect, nullability, defaults), primary keys, unique
//! constraints, foreign keys (with their ON DELETE action) and indexes. Each database is
//! migrated from scratch and read back through its own catalogue, so a migration added to one
//! dialect only, or a column typed differently, fails here.
//!
//! Needs `CAPLENS_TEST_POSTGRES_URL` (the test command sets it); without it the test says so
//! and checks only that the SQLite description is non-trivial.

mod common;

use std::collections::BTreeSet;

use common::TestDb;
use sqlx::Row;

/// One fact about the schema, as text that reads the same for both dialects.
type Facts = BTreeSet<String>;

/// The dialect-free name of a column type: SQLite's type affinity of the declared type.
fn affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") || t.contains("SERIAL") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("TEXT") || t.contains("CLOB") {
        "TEXT"
    } else if t.contains("BLOB") || t.contains("BYTEA") || t.is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// A column default without dialect decoration: `'[]'::text` and `'[]'` are the same default;
/// sequences (PostgreSQL's SERIAL, SQLite's rowid) are not defaults of the schema's own.
fn default_text(default: Option<String>) -> String {
    let Some(d) = default else {
        return "-".into();
    };
    if d.starts_with("nextval(") {
        return "-".into();
    }
    let mut d = d.trim().to_string();
    while d.starts_with('(') && d.ends_with(')') {
        d = d[1..d.len() - 1].trim().to_string();
    }
    if let Some(i) = d.find("::") {
        d.truncate(i);
    }
    d.to_ascii_lowercase()
}

fn on_delete(action: &str) -> String {
    match action.to_ascii_uppercase().as_str() {
        "" | "NO ACTION" | "A" => "NO ACTION".into(),
        "CASCADE" | "C" => "CASCADE".into(),
        "SET NULL" | "N" => "SET NULL".into(),
        "RESTRICT" | "R" => "RESTRICT".into(),
        "SET DEFAULT" | "D" => "SET DEFAULT".into(),
        other => other.into(),
    }
}

async fn sqlite_facts(db: &TestDb) -> Facts {
    let pool = db.store.pool();
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in &tables {
        facts.insert(format!("table {t}"));
        let cols = sqlx::query(&format!(
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in &cols {
            let name: String = c.get(0);
            let declared: String = c.get(1);
            let not_null: i64 = c.get(2);
            let default: Option<String> = c.get(3);
            let pk_pos: i64 = c.get(4);
            if pk_pos > 0 {
                pk.push((pk_pos, name.clone()));
            }
            facts.insert(format!(
                "column {t}.{name} {} {} default {}",
                affinity(&declared),
                if not_null != 0 || pk_pos > 0 {
                    "NOT NULL"
                } else {
                    "NULL"
                },
                default_text(default)
            ));
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|p| p.1).collect();
        if !pk.is_empty() {
            facts.insert(format!("primary key {t}({})", pk.join(",")));
        }
        let fks = sqlx::query(&format!(
            "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list('{t}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for f in &fks {
            let from: String = f.get(0);
            let table: String = f.get(1);
            let to: Option<String> = f.get(2);
            let action: String = f.get(3);
            facts.insert(format!(
                "foreign key {t}.{from} -> {table}.{} on delete {}",
                to.unwrap_or_else(|| "id".into()),
                on_delete(&action)
            ));
        }
        let indexes = sqlx::query(&format!(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list('{t}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for i in &indexes {
            let name: String = i.get(0);
            let unique: i64 = i.get(1);
            let origin: String = i.get(2);
            let partial: i64 = i.get(3);
            if origin == "pk" {
                continue;
            }
            let cols: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT COALESCE(name, '<expr>') FROM pragma_index_info('{name}') ORDER BY seqno"
            ))
            .fetch_all(pool)
            .await
            .unwrap();
            facts.insert(index_fact(t, &cols, unique != 0, partial != 0));
        }
    }
    facts
}

fn index_fact(table: &str, cols: &[String], unique: bool, partial: bool) -> String {
    format!(
        "{}index {table}({}){}",
        if unique { "unique " } else { "" },
        cols.join(","),
        if partial { " partial" } else { "" }
    )
}

async fn postgres_facts(db: &TestDb) -> Facts {
    let pool = db.store.pool();
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for t in &tables {
        facts.insert(format!("table {t}"));
        let cols = sqlx::query(
            "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(t)
        .fetch_all(pool)
        .await
        .unwrap();
        for c in &cols {
            let name: String = c.get(0);
            let declared: String = c.get(1);
            let nullable: String = c.get(2);
            let default: Option<String> = c.get(3);
            facts.insert(format!(
                "column {t}.{name} {} {} default {}",
                affinity(&declared),
                if nullable == "NO" { "NOT NULL" } else { "NULL" },
                default_text(default)
            ));
        }
        // Keys and indexes from pg_catalog: columns in key order.
        let keyed = sqlx::query(
            "SELECT i.indisprimary::int::int8, i.indisunique::int::int8, (i.indpred IS NOT NULL)::int::int8,
                    COALESCE((SELECT string_agg(COALESCE(a.attname::text, '<expr>'), ',' ORDER BY k.n)
                              FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                              LEFT JOIN pg_attribute a
                                ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0), '')
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace ns ON ns.oid = c.relnamespace
             WHERE ns.nspname = current_schema() AND c.relname = $1",
        )
        .bind(t)
        .fetch_all(pool)
        .await
        .unwrap();
        for k in &keyed {
            let primary: i64 = k.get(0);
            let unique: i64 = k.get(1);
            let partial: i64 = k.get(2);
            let cols: String = k.get(3);
            let cols: Vec<String> = cols.split(',').map(str::to_owned).collect();
            if primary != 0 {
                facts.insert(format!("primary key {t}({})", cols.join(",")));
            } else {
                facts.insert(index_fact(t, &cols, unique != 0, partial != 0));
            }
        }
        let fks = sqlx::query(
            "SELECT a.attname::text, rc.relname::text, ra.attname::text, con.confdeltype::text
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace ns ON ns.oid = c.relnamespace
             JOIN pg_class rc ON rc.oid = con.confrelid
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
             JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = con.confkey[1]
             WHERE con.contype = 'f' AND ns.nspname = current_schema() AND c.relname = $1",
        )
        .bind(t)
        .fetch_all(pool)
        .await
        .unwrap();
        for f in &fks {
            let from: String = f.get(0);
            let table: String = f.get(1);
            let to: String = f.get(2);
            let action: String = f.get(3);
            facts.insert(format!(
                "foreign key {t}.{from} -> {table}.{to} on delete {}",
                on_delete(&action)
            ));
        }
    }
    facts
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_describe_the_same_schema() {
    let sqlite = TestDb::sqlite().await;
    let lite = sqlite_facts(&sqlite).await;
    assert!(
        lite.iter().filter(|f| f.starts_with("table ")).count() >= 20
            && lite.contains("unique index rollouts(run_id,problem_id,sample_index)")
            && lite
                .iter()
                .any(|f| f.starts_with("foreign key rollouts.run_id -> runs.id")),
        "the SQLite description misses what the schema is known to have: {lite:#?}"
    );
    let Some(pg) = TestDb::postgres().await else {
        eprintln!(
            "note: CAPLENS_TEST_POSTGRES_URL not set; the PostgreSQL schema was not compared"
        );
        return;
    };
    let post = postgres_facts(&pg).await;
    // The one intended difference (migrations/postgres/0008_bulk_load.sql): PostgreSQL's
    // rollouts keep no foreign keys to runs and problems (a trigger per row made bulk loads
    // slow); SQLite cannot drop them without rebuilding the table. Storage deletes rollouts
    // before their runs, so both behave the same.
    let intended = [
        "foreign key rollouts.run_id -> runs.id on delete CASCADE",
        "foreign key rollouts.problem_id -> problems.id on delete CASCADE",
    ];
    for fact in intended {
        assert!(
            lite.contains(fact) && !post.contains(fact),
            "{fact}: the intended difference changed"
        );
    }
    // The second (migrations/*/0011_problem_search.sql): full-text search over problems is an
    // FTS5 table with its shadow tables on SQLite, a stored tsvector column with a GIN index on
    // PostgreSQL.
    let search_lite = |f: &String| f.contains("problems_fts");
    let search_post =
        |f: &String| f == "index problems(search)" || f.starts_with("column problems.search ");
    assert!(
        lite.iter().any(search_lite) && post.iter().filter(|f| search_post(f)).count() == 2,
        "the full-text search index changed"
    );
    let post: Facts = post.into_iter().filter(|f| !search_post(f)).collect();
    let lite: Facts = lite
        .into_iter()
        .filter(|f| !intended.contains(&f.as_str()) && !search_lite(f))
        .collect();
    let only_sqlite: Vec<&String> = lite.difference(&post).collect();
    let only_postgres: Vec<&String> = post.difference(&lite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations disagree.\nonly in SQLite:\n  {}\nonly in PostgreSQL:\n  {}",
        only_sqlite
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_postgres
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    pg.cleanup().await;
}
