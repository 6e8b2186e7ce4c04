//! Reads behind the problem page and the rollout page: one problem with its per-run aggregates
//! (`run_problem_stats`, never a scan of rollouts for numbers), one page of a run's rollouts of a
//! problem, one rollout, and its token trace (one byte range of a trace pack).

use caplens_analysis::{
    passk::pass_at_k,
    trace::{decode, TokenTrace},
    verdicts::CaplensVerdict,
    verifier::{normalize_answer, verify, Verdict},
};
use caplens_model::model::{
    AnswerCluster, ProblemDetail, ProblemRunStats, RolloutList, RolloutRow,
};
use sqlx::{any::AnyRow, Row};

use super::responses::{ResponseAt, ResponseReader, RESPONSE_COLUMNS};
use super::{catalog::quality_flags, db, Store};
use crate::error::StoreError;

/// Most rollouts listed per page.
pub const MAX_PER_PAGE: i64 = 100;

/// Where a rollout's token trace lives: the byte range of a blob.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRef {
    pub key: String,
    /// `None` (with `length`) for a trace stored as a whole blob.
    pub offset: Option<u64>,
    pub length: Option<u64>,
}

/// One rollout with its run, model and problem.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRollout {
    pub row: RolloutRow,
    pub run_id: i64,
    pub model: String,
    pub stage: String,
    pub problem_id: i64,
    pub problem_key: String,
    pub dataset: String,
    pub response: Option<String>,
    pub trace: Option<TraceRef>,
}

/// Why a stored trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("the token trace is missing from the blob store ({0})")]
    Missing(String),
    #[error("the token trace is corrupt: {0}")]
    Corrupt(String),
    /// The pack exists but the range could not be read (shorter than the index says, I/O).
    #[error("the token trace could not be read (the server log has the details)")]
    Unreadable(#[source] StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Names of the quality flags set in `bits` (storage::catalog::quality_flags).
pub fn quality_flag_names(bits: i64) -> Vec<String> {
    [
        (quality_flags::FORMAT_VIOLATION, "format violation"),
        (quality_flags::LANGUAGE_MIXING, "language mixing"),
        (quality_flags::REDUNDANT, "3-gram redundancy > 0.31"),
        (quality_flags::NO_DIGIT, "no digit"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name.to_string())
    .collect()
}

/// pass@k at k = 1, 2, 4, ... up to n (eq. 2, `analysis::passk::pass_at_k`).
pub fn pass_at_powers_of_two(n: u64, c: u64) -> Vec<(u64, f64)> {
    std::iter::successors(Some(1u64), |k| k.checked_mul(2))
        .take_while(|&k| k <= n)
        .filter_map(|k| pass_at_k(n, c, k).map(|p| (k, p)))
        .collect()
}

/// Answer clusters from `run_problem_stats.answers` (normalised answer -> count), most frequent
/// first; correct = the verifier finds the answer equal to the reference.
pub fn answer_clusters(answers_json: &str, reference: &str) -> Vec<AnswerCluster> {
    let map: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(answers_json).unwrap_or_default();
    let mut clusters: Vec<AnswerCluster> = map
        .into_iter()
        .map(|(answer, count)| AnswerCluster {
            correct: !reference.trim().is_empty() && verify(&answer, reference) == Verdict::Equal,
            answer,
            count,
            reviewed: None,
        })
        .collect();
    clusters.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.answer.cmp(&b.answer)));
    clusters
}

const ROLLOUT_COLUMNS: &str = "x.id, x.sample_index, x.correct, x.extracted_answer, x.token_count,
    x.finish_reason, x.quality_flags, x.mean_entropy, x.mean_rbf, x.perplexity, x.trace_key,
    x.file_correct, x.caplens_verdict";

fn rollout_row(row: &AnyRow) -> Result<RolloutRow, sqlx::Error> {
    Ok(RolloutRow {
        id: row.try_get("id")?,
        sample_index: row.try_get("sample_index")?,
        correct: row.try_get::<i64, _>("correct")? != 0,
        overridden: false,
        file_correct: row
            .try_get::<Option<i64>, _>("file_correct")?
            .map(|v| v != 0),
        // NULL means "no reference" only on rows that have a file verdict column at all.
        caplens_verdict: {
            let code: Option<i64> = row.try_get("caplens_verdict")?;
            let file: Option<i64> = row.try_get("file_correct")?;
            (code.is_some() || file.is_some()).then(|| CaplensVerdict::from_code(code))
        },
        answer: row.try_get("extracted_answer")?,
        token_count: row.try_get("token_count")?,
        finish_reason: row.try_get("finish_reason")?,
        quality_flags: quality_flag_names(row.try_get("quality_flags")?),
        mean_entropy: row.try_get("mean_entropy")?,
        mean_rbf: row.try_get("mean_rbf")?,
        perplexity: row.try_get("perplexity")?,
        has_trace: row.try_get::<Option<String>, _>("trace_key")?.is_some(),
    })
}

impl Store {
    /// A problem with every run's numbers on it, runs in model lineage order. `runs` restricts
    /// to those run ids; ids that do not exist or have no data on the problem are reported.
    pub async fn problem_detail(
        &self,
        problem_id: i64,
        runs: Option<&[i64]>,
    ) -> Result<Option<ProblemDetail>, StoreError> {
        let Some(p) = db(sqlx::query(
            "SELECT p.id, p.problem_key, p.prompt, p.reference_answer, p.tags, d.name AS dataset
             FROM problems p JOIN datasets d ON d.id = p.dataset_id WHERE p.id = $1",
        )
        .bind(problem_id)
        .fetch_optional(&self.pool)
        .await)?
        else {
            return Ok(None);
        };
        let reference: String = db(p.try_get("reference_answer"))?;
        let rows = db(sqlx::query(
            "SELECT s.run_id, s.n, s.c, s.c_file, s.c_caplens, s.answers, r.label,
                    m.id AS model_id, m.name AS model, m.stage
             FROM run_problem_stats s JOIN runs r ON r.id = s.run_id
             JOIN models m ON m.id = r.model_id
             WHERE s.problem_id = $1 ORDER BY s.run_id",
        )
        .bind(problem_id)
        .fetch_all(&self.pool)
        .await)?;
        let lineage = super::catalog::lineage_positions(&self.models().await?);
        let mut stats = Vec::with_capacity(rows.len());
        for row in &rows {
            let run_id: i64 = db(row.try_get("run_id"))?;
            if runs.is_some_and(|ids| !ids.contains(&run_id)) {
                continue;
            }
            let (n, c): (i64, i64) = (db(row.try_get("n"))?, db(row.try_get("c"))?);
            let model_id: i64 = db(row.try_get("model_id"))?;
            let (rank, depth) = lineage.get(&model_id).copied().unwrap_or((usize::MAX, 0));
            let answers: String = db(row.try_get("answers"))?;
            stats.push((
                rank,
                ProblemRunStats {
                    run_id,
                    label: db(row.try_get("label"))?,
                    model: db(row.try_get("model"))?,
                    stage: db(row.try_get("stage"))?,
                    lineage_depth: depth,
                    n,
                    c,
                    c_file: db(row.try_get("c_file"))?,
                    c_caplens: db(row.try_get("c_caplens"))?,
                    pass_at: pass_at_powers_of_two(n.max(0) as u64, c.max(0) as u64),
                    answers: answer_clusters(&answers, &reference),
                },
            ));
        }
        stats.sort_by_key(|(rank, s)| (*rank, s.run_id));
        let stats: Vec<ProblemRunStats> = stats.into_iter().map(|(_, s)| s).collect();
        let missing_runs = runs
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|id| !stats.iter().any(|s| s.run_id == *id))
            .collect();
        let tags: String = db(p.try_get("tags"))?;
        Ok(Some(ProblemDetail {
            id: db(p.try_get("id"))?,
            key: db(p.try_get("problem_key"))?,
            dataset: db(p.try_get("dataset"))?,
            prompt: db(p.try_get("prompt"))?,
            reference_answer: reference,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            runs: stats,
            missing_runs,
            review: None,
        }))
    }

    /// One page (1-based) of a run's rollouts of a problem, by sample index; `answer` keeps
    /// the rollouts whose normalised final answer equals it; the responses of the `open` ones
    /// on the page come along.
    pub async fn problem_rollouts(
        &self,
        problem_id: i64,
        run_id: i64,
        page: i64,
        per_page: i64,
        answer: Option<&str>,
        open: &[i64],
    ) -> Result<RolloutList, StoreError> {
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let page = page.max(1);
        // Ids (and answers, to filter) first: small columns of one (run, problem), read through
        // the (run_id, problem_id, sample_index) index; then the page's rows in full.
        let ids: Vec<(i64, Option<String>)> = db(sqlx::query_as(
            "SELECT id, extracted_answer FROM rollouts WHERE run_id = $1 AND problem_id = $2
             ORDER BY sample_index",
        )
        .bind(run_id)
        .bind(problem_id)
        .fetch_all(&self.pool)
        .await)?;
        let matching: Vec<i64> = match answer {
            None => ids.into_iter().map(|(id, _)| id).collect(),
            Some(wanted) => ids
                .into_iter()
                .filter(|(_, a)| a.as_deref().is_some_and(|a| normalize_answer(a) == wanted))
                .map(|(id, _)| id)
                .collect(),
        };
        let start = ((page - 1) * per_page) as usize;
        let page_ids: Vec<i64> = matching
            .iter()
            .skip(start)
            .take(per_page as usize)
            .copied()
            .collect();
        // The ids are integers (from the database, or parsed): safe to write into the SQL.
        let id_list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let mut items = Vec::with_capacity(page_ids.len());
        if !page_ids.is_empty() {
            let sql = format!(
                "SELECT {ROLLOUT_COLUMNS} FROM rollouts x WHERE x.id IN ({})
                 ORDER BY x.sample_index",
                id_list(&page_ids)
            );
            let rows = db(sqlx::query(&sql).fetch_all(&self.pool).await)?;
            for row in &rows {
                items.push(db(rollout_row(row))?);
            }
        }
        let open: Vec<i64> = page_ids
            .iter()
            .copied()
            .filter(|id| open.contains(id))
            .collect();
        let responses = if open.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT x.id, {RESPONSE_COLUMNS} FROM rollouts x WHERE x.id IN ({}) ORDER BY x.id",
                id_list(&open)
            );
            let rows = db(sqlx::query(&sql).fetch_all(&self.pool).await)?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut ats = Vec::with_capacity(rows.len());
            for row in &rows {
                ids.push(db(row.try_get::<i64, _>("id"))?);
                ats.push(db(ResponseAt::of_row(row))?);
            }
            let texts = ResponseReader::new(&self.blobs).texts(ats).await?;
            ids.into_iter().zip(texts).collect()
        };
        Ok(RolloutList {
            run_id: Some(run_id),
            total: matching.len() as i64,
            page,
            per_page,
            items,
            responses,
        })
    }

    /// One rollout with its run, model, problem and trace location.
    pub async fn rollout(&self, id: i64) -> Result<Option<StoredRollout>, StoreError> {
        let sql = format!(
            "SELECT {ROLLOUT_COLUMNS}, x.run_id, x.problem_id, {RESPONSE_COLUMNS}, x.trace_offset,
                    x.trace_length, m.name AS model, m.stage, p.problem_key, d.name AS dataset
             FROM rollouts x JOIN runs r ON r.id = x.run_id JOIN models m ON m.id = r.model_id
             JOIN problems p ON p.id = x.problem_id JOIN datasets d ON d.id = p.dataset_id
             WHERE x.id = $1"
        );
        let Some(row) = db(sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await)? else {
            return Ok(None);
        };
        let key: Option<String> = db(row.try_get("trace_key"))?;
        let offset: Option<i64> = db(row.try_get("trace_offset"))?;
        let length: Option<i64> = db(row.try_get("trace_length"))?;
        Ok(Some(StoredRollout {
            row: db(rollout_row(&row))?,
            run_id: db(row.try_get("run_id"))?,
            model: db(row.try_get("model"))?,
            stage: db(row.try_get("stage"))?,
            problem_id: db(row.try_get("problem_id"))?,
            problem_key: db(row.try_get("problem_key"))?,
            dataset: db(row.try_get("dataset"))?,
            response: ResponseReader::new(&self.blobs)
                .text(db(ResponseAt::of_row(&row))?)
                .await?,
            trace: key.map(|key| TraceRef {
                key,
                offset: offset.map(|o| o.max(0) as u64),
                length: length.map(|l| l.max(0) as u64),
            }),
        }))
    }

    /// Whether run `id` exists (the sweeper asks for the demo's packs).
    pub async fn run_exists(&self, id: i64) -> Result<bool, StoreError> {
        let found: Option<i64> = db(sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await)?;
        Ok(found.is_some())
    }

    /// The blob key rollout `id`'s trace is read from, if any.
    pub async fn rollout_trace_key(&self, id: i64) -> Result<Option<String>, StoreError> {
        let key: Option<Option<String>> = db(sqlx::query_scalar(
            "SELECT trace_key FROM rollouts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(key.flatten())
    }

    /// Reads and decodes one trace: one byte range of its pack, never another rollout's.
    pub async fn read_trace(&self, trace: &TraceRef) -> Result<TokenTrace, TraceError> {
        let read = match (trace.offset, trace.length) {
            (Some(offset), Some(length)) => self.blobs.get_range(&trace.key, offset, length).await,
            _ => self.blobs.get(&trace.key).await,
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e @ StoreError::Blob { .. }) => {
                tracing::warn!(key = %trace.key, error = %e, "token trace unreadable");
                return Err(TraceError::Unreadable(e));
            }
            Err(e) => return Err(TraceError::Store(e)),
        };
        let bytes = bytes.ok_or_else(|| TraceError::Missing(trace.key.clone()))?;
        decode(&bytes).map_err(|e| TraceError::Corrupt(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_powers_of_two_matches_the_analysis_crate() {
        let got = pass_at_powers_of_two(10, 3);
        let ks: Vec<u64> = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(ks, [1, 2, 4, 8]);
        for (k, p) in got {
            assert_eq!(Some(p), pass_at_k(10, 3, k));
        }
        assert_eq!(pass_at_powers_of_two(0, 0), vec![]);
        assert_eq!(pass_at_powers_of_two(1, 1), vec![(1, 1.0)]);
    }

    #[test]
    fn clusters_sort_by_count_and_mark_the_reference() {
        let c = answer_clusters(r#"{"12":3,"\\frac{1}{2}":5,"7":3}"#, "0.5");
        let got: Vec<(&str, i64, bool)> = c
            .iter()
            .map(|a| (a.answer.as_str(), a.count, a.correct))
            .collect();
        assert_eq!(
            got,
            [("\\frac{1}{2}", 5, true), ("12", 3, false), ("7", 3, false)]
        );
        assert!(answer_clusters("{\"5\":1}", "").iter().all(|a| !a.correct));
        assert!(answer_clusters("not json", "5").is_empty());
    }

    #[test]
    fn flag_names_follow_the_bits() {
        assert_eq!(quality_flag_names(0), Vec::<String>::new());
        assert_eq!(
            quality_flag_names(quality_flags::FORMAT_VIOLATION | quality_flags::NO_DIGIT),
            ["format violation", "no digit"]
        );
    }
}
