//! Full-text search over problems (issue 27): prompt and key, through the index migration 0011
//! made — SQLite's FTS5 table `problems_fts`, PostgreSQL's GIN index over the stored column
//! `problems.search` (`to_tsvector('simple', …)` of key and prompt with ASCII punctuation as
//! spaces) — never a scan of the prompts. A query
//! is split into terms (runs of letters and digits, lowercased); a problem matches when it holds
//! every term as a word or a word's beginning (`integ` finds "integer").

use std::collections::{HashMap, HashSet};

use super::{db, Backend, Store};
use crate::error::StoreError;

/// Terms a search uses at most; the rest of a longer query is ignored.
pub const MAX_SEARCH_TERMS: usize = 16;
/// Characters of one term kept at most.
const MAX_TERM_CHARS: usize = 64;

/// The terms of a search query: runs of letters and digits (any script), lowercased, at most
/// [`MAX_SEARCH_TERMS`] of at most 64 characters. Everything else separates terms, so nothing of
/// the query reaches the index's query syntax but letters and digits.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let term: String = word.to_lowercase().chars().take(MAX_TERM_CHARS).collect();
        if !terms.contains(&term) {
            terms.push(term);
        }
        if terms.len() == MAX_SEARCH_TERMS {
            break;
        }
    }
    terms
}

impl Store {
    /// The problems of experiment `experiment_id`'s datasets whose prompt or key holds every
    /// term of `query` (see the module); `None` when the query has no term (no filter).
    pub async fn search_problems(
        &self,
        experiment_id: i64,
        query: &str,
    ) -> Result<Option<HashSet<i64>>, StoreError> {
        let terms = search_terms(query);
        if terms.is_empty() {
            return Ok(None);
        }
        let datasets = "SELECT r.dataset_id FROM experiment_runs er JOIN runs r ON r.id = er.run_id
                        WHERE er.experiment_id = $2";
        let (sql, expression) = match self.backend {
            Backend::Sqlite => (
                format!(
                    "SELECT p.id FROM problems_fts f JOIN problems p ON p.id = f.rowid
                     WHERE problems_fts MATCH $1 AND p.dataset_id IN ({datasets})"
                ),
                self.index_query(&terms),
            ),
            Backend::Postgres => (
                format!(
                    "SELECT id FROM problems
                     WHERE search @@ to_tsquery('simple', $1)
                       AND dataset_id IN ({datasets})"
                ),
                self.index_query(&terms),
            ),
        };
        let ids: Vec<i64> = db(sqlx::query_scalar(&sql)
            .persistent(false)
            .bind(expression)
            .bind(experiment_id)
            .fetch_all(&self.pool)
            .await)?;
        Ok(Some(ids.into_iter().collect()))
    }

    /// The full-text index's query for `terms` (letters and digits only, [`search_terms`]): every
    /// term as a word or a word's beginning. FTS5: quoted strings with a prefix star, joined by
    /// AND; PostgreSQL: `term:*` joined by `&`.
    fn index_query(&self, terms: &[String]) -> String {
        let (each, and): (fn(&String) -> String, &str) = match self.backend {
            Backend::Sqlite => (|t| format!("\"{t}\"*"), " AND "),
            Backend::Postgres => (|t| format!("{t}:*"), " & "),
        };
        terms.iter().map(each).collect::<Vec<_>>().join(and)
    }

    /// One page of dataset `dataset_id`'s problems in file order (the ones holding every term
    /// of `query` when it has any, through the same index as [`Self::search_problems`]) and
    /// how many match before paging.
    pub async fn dataset_problems(
        &self,
        dataset_id: i64,
        query: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(u64, Vec<caplens_model::model::DatasetProblemRow>), StoreError> {
        let terms = query.map(search_terms).unwrap_or_default();
        let filter = match (terms.is_empty(), self.backend) {
            (true, _) => String::new(),
            (false, Backend::Sqlite) => {
                " AND p.id IN (SELECT rowid FROM problems_fts WHERE problems_fts MATCH $2)".into()
            }
            (false, Backend::Postgres) => " AND p.search @@ to_tsquery('simple', $2)".into(),
        };
        let expression = self.index_query(&terms);
        let count_sql = format!("SELECT COUNT(*) FROM problems p WHERE p.dataset_id = $1{filter}");
        let page_sql = format!(
            "SELECT p.id, p.problem_key, p.prompt, p.reference_answer FROM problems p
             WHERE p.dataset_id = $1{filter} ORDER BY p.id LIMIT {} OFFSET {}",
            limit.min(i64::MAX as u64),
            offset.min(i64::MAX as u64)
        );
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql)
            .persistent(false)
            .bind(dataset_id);
        let mut page = sqlx::query_as::<_, (i64, String, String, String)>(&page_sql)
            .persistent(false)
            .bind(dataset_id);
        if !terms.is_empty() {
            count = count.bind(expression.clone());
            page = page.bind(expression);
        }
        let total = db(count.fetch_one(&self.pool).await)?;
        let rows = db(page.fetch_all(&self.pool).await)?;
        Ok((
            total.max(0) as u64,
            rows.into_iter()
                .map(
                    |(id, key, prompt, reference)| caplens_model::model::DatasetProblemRow {
                        id,
                        key,
                        prompt,
                        reference,
                    },
                )
                .collect(),
        ))
    }

    /// One dataset's row, or `None`.
    pub async fn dataset(
        &self,
        dataset_id: i64,
    ) -> Result<Option<caplens_model::model::DatasetRow>, StoreError> {
        Ok(self
            .datasets()
            .await?
            .into_iter()
            .find(|d| d.id == dataset_id))
    }

    /// The prompts of the given problems (a page of the problems view).
    pub async fn problem_prompts(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let rows: Vec<(i64, String)> = db(sqlx::query_as(&format!(
            "SELECT id, prompt FROM problems WHERE id IN ({})",
            list.join(",")
        ))
        .persistent(false)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_letters_and_digits_only() {
        assert_eq!(search_terms("AIME24-7"), vec!["aime24", "7"]);
        assert_eq!(
            search_terms("\" OR 1=1; -- x:* & y"),
            vec!["or", "1", "x", "y"]
        );
        assert_eq!(search_terms("  "), Vec::<String>::new());
        assert_eq!(search_terms("Théorème théorème"), vec!["théorème"]);
        assert_eq!(search_terms(&"a ".repeat(40)).len(), 1);
        let many: String = (0..40).map(|i| format!("w{i} ")).collect();
        assert_eq!(search_terms(&many).len(), MAX_SEARCH_TERMS);
    }
}
