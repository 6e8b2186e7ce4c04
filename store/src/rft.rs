//! What the RFT data & advantage-shaping page reads from `rollouts` (the only page that reads
//! rollout rows, and then only one run or one problem's group at a time): every rollout of one
//! run streamed once for the selection, the selected rollouts by id (preview page, JSON Lines
//! export), and the rollouts of one (run, problem) group.

use futures_util::TryStreamExt;
use sqlx::Row;

use super::responses::{ResponseAt, ResponseReader, RESPONSE_COLUMNS};
use super::{catalog::quality_flags, db, Store};
use crate::error::StoreError;

/// What the selection needs of one rollout (its response is dropped after the rule filters).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutCandidate {
    pub id: i64,
    pub correct: bool,
    pub response: Option<String>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
}

/// A rollout with its problem, for the preview and the export.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    pub id: i64,
    pub dataset: String,
    pub problem_key: String,
    pub prompt: String,
    pub reference_answer: String,
    pub sample_index: i64,
    pub response: Option<String>,
    pub extracted_answer: Option<String>,
    pub correct: bool,
    pub token_count: Option<i64>,
    pub finish_reason: Option<String>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    pub quality_flags: i64,
}

/// One rollout of a problem's group, for the advantages.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRollout {
    pub id: i64,
    pub sample_index: i64,
    pub correct: bool,
    pub token_count: Option<i64>,
    pub perplexity: Option<f64>,
    pub quality_flags: i64,
}

/// The names of a rollout's quality flag bits (`storage::catalog::quality_flags`).
pub fn quality_flag_names(bits: i64) -> Vec<&'static str> {
    [
        (quality_flags::FORMAT_VIOLATION, "format_violation"),
        (quality_flags::LANGUAGE_MIXING, "language_mixing"),
        (quality_flags::REDUNDANT, "redundant"),
        (quality_flags::NO_DIGIT, "no_digit"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// Ids per `IN (...)` query when reading rollouts by id.
const ID_CHUNK: usize = 500;

impl Store {
    /// Calls `visit` for every rollout of `run_id` in stored order (rollout id: for an import,
    /// the order of the file, so a selection matches `caplens rft-select` on that file). Rows
    /// are streamed: memory stays flat however many rollouts the run has.
    pub async fn for_each_run_rollout(
        &self,
        run_id: i64,
        mut visit: impl FnMut(RolloutCandidate),
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT x.id, x.correct, {RESPONSE_COLUMNS}, x.mean_entropy, x.mean_rbf, x.perplexity
             FROM rollouts x WHERE x.run_id = $1 ORDER BY x.id"
        );
        let mut rows = sqlx::query(&sql).bind(run_id).fetch(&self.pool);
        let mut reader = ResponseReader::sequential(&self.blobs);
        let mut seen = 0;
        while let Some(row) = db(rows.try_next().await)? {
            visit(RolloutCandidate {
                id: db(row.try_get("id"))?,
                correct: db(row.try_get::<i64, _>("correct"))? != 0,
                response: reader.text(db(ResponseAt::of_row(&row))?).await?,
                mean_entropy: db(row.try_get("mean_entropy"))?,
                mean_rbf: db(row.try_get("mean_rbf"))?,
                perplexity: db(row.try_get("perplexity"))?,
            });
            seen += 1;
        }
        Ok(seen)
    }

    /// The rollouts with these ids (our own integers), in ascending id order.
    pub async fn rollouts_by_id(&self, ids: &[i64]) -> Result<Vec<RolloutRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        for chunk in sorted.chunks(ID_CHUNK) {
            // Integers we produced, inlined: no placeholder limits, one statement per chunk size.
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!(
                "SELECT x.id, d.name AS dataset, p.problem_key, p.prompt, p.reference_answer,
                        x.sample_index, {RESPONSE_COLUMNS}, x.extracted_answer, x.correct, x.token_count,
                        x.finish_reason, x.mean_entropy, x.mean_rbf, x.perplexity, x.quality_flags
                 FROM rollouts x JOIN problems p ON p.id = x.problem_id
                 JOIN datasets d ON d.id = p.dataset_id
                 WHERE x.id IN ({}) ORDER BY x.id",
                list.join(",")
            );
            let rows = db(sqlx::query(&sql)
                .persistent(false)
                .fetch_all(&self.pool)
                .await)?;
            let mut ats = Vec::with_capacity(rows.len());
            for row in &rows {
                ats.push(db(ResponseAt::of_row(row))?);
            }
            let mut texts = ResponseReader::new(&self.blobs)
                .texts(ats)
                .await?
                .into_iter();
            for row in rows {
                out.push(RolloutRecord {
                    id: db(row.try_get("id"))?,
                    dataset: db(row.try_get("dataset"))?,
                    problem_key: db(row.try_get("problem_key"))?,
                    prompt: db(row.try_get("prompt"))?,
                    reference_answer: db(row.try_get("reference_answer"))?,
                    sample_index: db(row.try_get("sample_index"))?,
                    response: texts.next().flatten(),
                    extracted_answer: db(row.try_get("extracted_answer"))?,
                    correct: db(row.try_get::<i64, _>("correct"))? != 0,
                    token_count: db(row.try_get("token_count"))?,
                    finish_reason: db(row.try_get("finish_reason"))?,
                    mean_entropy: db(row.try_get("mean_entropy"))?,
                    mean_rbf: db(row.try_get("mean_rbf"))?,
                    perplexity: db(row.try_get("perplexity"))?,
                    quality_flags: db(row.try_get("quality_flags"))?,
                });
            }
        }
        Ok(out)
    }

    /// The rollouts of one problem in one run (its GRPO group), by sample index.
    pub async fn problem_group(
        &self,
        run_id: i64,
        problem_id: i64,
    ) -> Result<Vec<GroupRollout>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT id, sample_index, correct, token_count, perplexity, quality_flags
             FROM rollouts WHERE run_id = $1 AND problem_id = $2 ORDER BY sample_index, id",
        )
        .bind(run_id)
        .bind(problem_id)
        .fetch_all(&self.pool)
        .await)?;
        rows.iter()
            .map(|row| {
                Ok(GroupRollout {
                    id: db(row.try_get("id"))?,
                    sample_index: db(row.try_get("sample_index"))?,
                    correct: db(row.try_get::<i64, _>("correct"))? != 0,
                    token_count: db(row.try_get("token_count"))?,
                    perplexity: db(row.try_get("perplexity"))?,
                    quality_flags: db(row.try_get("quality_flags"))?,
                })
            })
            .collect()
    }

    /// A problem's prompt and reference answer.
    pub async fn problem_text(
        &self,
        problem_id: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        db(
            sqlx::query_as("SELECT prompt, reference_answer FROM problems WHERE id = $1")
                .bind(problem_id)
                .fetch_optional(&self.pool)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_follow_the_bits() {
        assert_eq!(quality_flag_names(0), Vec::<&str>::new());
        assert_eq!(
            quality_flag_names(quality_flags::FORMAT_VIOLATION | quality_flags::NO_DIGIT),
            vec!["format_violation", "no_digit"]
        );
    }
}
