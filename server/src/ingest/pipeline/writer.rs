//! The database side of an import: runs, problems, trace packs, rollups and token statistics,
//! with caches that keep lookups off the database; rows go to the storage's [`BulkWriter`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use caplens_analysis::rollup::RunRollup;
use caplens_analysis::token_stats::{RolloutTokens, TokenStatsAccumulator};
use caplens_analysis::verdicts::{CaplensVerdict, RolloutVerdicts, VerdictSource, VerdictTally};

use super::prepare::{caplens_verdict, Prepared, PreparedKind};
use super::{guess_stage, Failure, ImportParams, ImportProgress, ImportedRun, DEFAULT_EXPERIMENT};
use crate::ingest::{FileHints, InputError, SourceInfo};
use crate::storage::blobs::{BlobStore, PackWriter};
use crate::storage::bulk::{BulkWriter, NewModel, NewRollout, NewRun, ProblemStats, RunCompletion};
use crate::storage::catalog::quality_flags;
use crate::storage::Store;

/// One run being written.
pub(super) struct RunState {
    run_id: i64,
    model: String,
    dataset: String,
    dataset_id: i64,
    rollup: RunRollup,
    /// Database problem id -> dense index into `rollup.problems`.
    problem_index: HashMap<i64, usize>,
    problem_ids: Vec<i64>,
    /// The problems' keys, by dense index (for the uneven-samples warning).
    problem_keys: Vec<String>,
    pack: Option<PackWriter>,
    pack_key: Option<String>,
    /// The run's response texts (the rows keep byte ranges: the database holds numbers and
    /// keys only, which is what makes bulk loads fast).
    responses: Option<PackWriter>,
    responses_key: Option<String>,
    rollouts: u64,
    /// Records stored (rollouts and counts records): a run with none is not kept.
    pub(super) rows: u64,
    /// The file the run was first seen in (its SourceInfo is the run's).
    file_index: usize,
    verdicts: VerdictTally,
    token_stats: TokenStatsAccumulator,
}

/// The database side of an import; holds the caches that keep lookups off the database.
pub(super) struct Writer<'a> {
    store: &'a Store,
    import_id: &'a str,
    params: &'a ImportParams,
    /// The project every row goes to, found in the import's transaction.
    project_id: i64,
    /// Datasets shared by every project (the built-in one): read, never changed by an upload.
    shared_datasets: std::collections::HashSet<i64>,
    pub(super) runs: Vec<RunState>,
    /// Model name -> dataset -> index into `runs` (nested, so that a row's lookup borrows its
    /// strings instead of allocating a key).
    run_index: HashMap<String, HashMap<String, usize>>,
    datasets: HashMap<String, i64>,
    models: HashMap<String, i64>,
    /// Dataset id -> problem key -> (problem id, stored reference)
    problems: HashMap<i64, HashMap<String, (i64, Arc<str>)>>,
    pub(super) file_names: Vec<String>,
    /// What each file says about model, dataset and sampling (fallbacks after the params).
    pub(super) hints: Vec<FileHints>,
    /// What each file says about its run (known once the files are read).
    pub(super) sources: Vec<SourceInfo>,
    /// Whose verdicts the runs show by default: the file's, or caplens' when regrading.
    default_source: VerdictSource,
}

impl<'a> Writer<'a> {
    pub(super) fn new(
        store: &'a Store,
        import_id: &'a str,
        params: &'a ImportParams,
        project_id: i64,
    ) -> Self {
        Writer {
            store,
            import_id,
            params,
            project_id,
            shared_datasets: Default::default(),
            runs: Vec::new(),
            run_index: HashMap::new(),
            datasets: HashMap::new(),
            models: HashMap::new(),
            problems: HashMap::new(),
            file_names: Vec::new(),
            hints: Vec::new(),
            sources: Vec::new(),
            default_source: if params.regrade.unwrap_or(false) {
                VerdictSource::Caplens
            } else {
                VerdictSource::File
            },
        }
    }

    pub(super) async fn write_batch(
        &mut self,
        tx: &mut BulkWriter,
        batch: Vec<Prepared>,
        progress: &ImportProgress,
    ) -> Result<(), Failure> {
        for p in batch {
            let line = p.line;
            match self.write_one(tx, p).await? {
                Ok(()) => {
                    progress.rows_stored.fetch_add(1, Ordering::Relaxed);
                }
                Err((file_index, field, message)) => {
                    let e = InputError {
                        file: self.file_name(file_index).unwrap_or_default(),
                        line: Some(line),
                        field: Some(field.to_owned()),
                        message,
                    };
                    progress.reject(&e, self.params.skip_invalid.unwrap_or(false));
                    if !self.params.skip_invalid.unwrap_or(false) {
                        return Err(Failure::Input(e));
                    }
                }
            }
        }
        Ok(())
    }

    fn file_name(&self, index: usize) -> Option<String> {
        self.file_names.get(index).cloned()
    }

    /// Stores one prepared record. The outer error stops the import; the inner one rejects
    /// the record (file index, field, message).
    async fn write_one(
        &mut self,
        tx: &mut BulkWriter,
        p: Prepared,
    ) -> Result<Result<(), (usize, &'static str, String)>, Failure> {
        // Fallbacks are cloned only when used: this runs once per row.
        let hints = self.hints.get(p.file_index);
        let named_per_record = self.params.model.is_none() && p.model.is_some();
        let model = self
            .params
            .model
            .clone()
            .or(p.model)
            .or_else(|| hints.and_then(|h| h.model.clone()));
        let Some(model) = model else {
            return Ok(Err((
                p.file_index,
                "model",
                "the file does not name the model; give one (model= / --model)".into(),
            )));
        };
        let dataset = p
            .dataset
            .or_else(|| self.params.dataset.clone())
            .or_else(|| hints.and_then(|h| h.dataset.clone()))
            .unwrap_or_default();
        let step = self.params.step.or(p.step).or(hints.and_then(|h| h.step));
        let run = self
            .run(tx, &model, &dataset, step, named_per_record, p.file_index)
            .await?;
        let (problem_id, stored_reference) = self
            .problem(
                tx,
                self.runs[run].dataset_id,
                &p.problem_id,
                p.prompt.as_deref(),
                p.reference.as_deref(),
                &p.tags,
            )
            .await?;
        let state = &mut self.runs[run];
        let index = match state.problem_index.get(&problem_id) {
            Some(&i) => i,
            None => {
                let i = state.problem_ids.len();
                state.problem_ids.push(problem_id);
                state.problem_keys.push(p.problem_id.clone());
                state.problem_index.insert(problem_id, i);
                i
            }
        };
        match p.kind {
            PreparedKind::Counts { n, c } => {
                state.rollup.problem(index).push_counts(n, c);
                state.rows += 1;
            }
            PreparedKind::Rollout {
                file_correct,
                caplens,
                response,
                answer,
                finish_reason,
                checks,
                token_count,
                means,
                trace,
                tokens,
            } => {
                let caplens = caplens.unwrap_or_else(|| {
                    if stored_reference.trim().is_empty() {
                        CaplensVerdict::NoReference
                    } else {
                        caplens_verdict(answer.as_deref(), &stored_reference)
                    }
                });
                let verdicts = RolloutVerdicts {
                    file: file_correct,
                    caplens,
                };
                let (Some(by_file), Some(by_caplens)) = (
                    verdicts.under(VerdictSource::File),
                    verdicts.under(VerdictSource::Caplens),
                ) else {
                    return Ok(Err((
                        p.file_index,
                        "reference",
                        format!(
                            "no verdict and no reference answer for problem {:?}: give the reference in the file, or import the dataset's problems first",
                            p.problem_id
                        ),
                    )));
                };
                let correct = match self.default_source {
                    VerdictSource::File => by_file,
                    VerdictSource::Caplens => by_caplens,
                };
                let sample_index = match state.rollup.problem(index).push_rollout_graded(
                    p.sample,
                    [by_file, by_caplens],
                    answer.as_deref(),
                ) {
                    Ok(s) => s,
                    Err(e) => return Ok(Err((p.file_index, "sample", e.to_string()))),
                };
                state.rollup.totals.push(
                    response.as_deref().zip(checks),
                    means.mean_entropy,
                    means.mean_rbf,
                    means.ppl,
                );
                state.token_stats.push_rollout(RolloutTokens {
                    correct,
                    mean_entropy: means.mean_entropy,
                    ppl: means.ppl,
                    trace: tokens.as_deref(),
                });
                let trace = match trace {
                    Some(bytes) => {
                        if state.pack.is_none() {
                            let key = BlobStore::trace_pack_key(self.import_id, state.run_id);
                            state.pack = Some(self.store.blobs.create_pack(&key).await?);
                            state.pack_key = Some(key);
                        }
                        let (offset, len) =
                            state.pack.as_mut().expect("created").append(&bytes).await?;
                        Some((state.pack_key.clone().expect("created"), offset, len))
                    }
                    None => None,
                };
                let response_range = match &response {
                    Some(text) => {
                        if state.responses.is_none() {
                            let key = BlobStore::response_pack_key(self.import_id, state.run_id);
                            state.responses = Some(self.store.blobs.create_pack(&key).await?);
                            state.responses_key = Some(key);
                        }
                        let pack = state.responses.as_mut().expect("created");
                        let (offset, len) = pack.append(text.as_bytes()).await?;
                        Some((offset as i64, len as i64))
                    }
                    None => None,
                };
                state.rollouts += 1;
                state.rows += 1;
                state.verdicts.push(verdicts);
                tx.push_rollout(&NewRollout {
                    run_id: state.run_id,
                    problem_id,
                    sample_index: sample_index as i64,
                    response: None,
                    response_range,
                    extracted_answer: answer.as_deref(),
                    correct,
                    token_count,
                    finish_reason: finish_reason.as_deref(),
                    mean_entropy: means.mean_entropy,
                    mean_rbf: means.mean_rbf,
                    perplexity: means.ppl,
                    quality_flags: checks.map_or(0, quality_flags::of_checks),
                    trace: trace
                        .as_ref()
                        .map(|(k, o, l)| (k.as_str(), *o as i64, *l as i64)),
                    file_correct: verdicts.file,
                    caplens_verdict: verdicts.caplens.code(),
                })
                .await?;
            }
        }
        Ok(Ok(()))
    }

    /// The run of (model, dataset), created on first sight.
    async fn run(
        &mut self,
        tx: &mut BulkWriter,
        model: &str,
        dataset: &str,
        step: Option<i64>,
        named_per_record: bool,
        file_index: usize,
    ) -> Result<usize, Failure> {
        // A checkpoint known only by the file's step (a verl dump, uploaded as model=M) is its
        // own model "M@stepN" of family M; names the file gives per record, or a step given
        // by the uploader, are kept as they are.
        let model_name: std::borrow::Cow<str> = match (self.params.step, step) {
            (None, Some(s)) if !named_per_record => format!("{model}@step{s}").into(),
            _ => model.into(),
        };
        if let Some(&i) = self
            .run_index
            .get(model_name.as_ref())
            .and_then(|by_dataset| by_dataset.get(dataset))
        {
            return Ok(i);
        }
        let model_name = model_name.into_owned();
        let dataset_id = self.dataset(tx, dataset).await?;
        let model_id = self.model(tx, &model_name, model, step).await?;
        // The file's name, not the path it had on the uploader's machine.
        let label = self.params.label.clone().unwrap_or_else(|| {
            self.file_names
                .get(file_index)
                .map(|name| base_name(name).to_owned())
                .unwrap_or_else(|| model_name.clone())
        });
        let hints = self.hints.get(file_index);
        let run_id = tx
            .insert_run(&NewRun {
                project_id: self.project_id,
                model_id,
                dataset_id,
                label: &label,
                temperature: self
                    .params
                    .temperature
                    .or(hints.and_then(|h| h.temperature)),
                top_p: self.params.top_p.or(hints.and_then(|h| h.top_p)),
                max_tokens: self.params.max_tokens.or(hints.and_then(|h| h.max_tokens)),
                n_per_problem: None,
                seed: self.params.seed,
                prompt_template: None,
                status: "importing",
                origin: "upload",
                import_id: Some(self.import_id),
            })
            .await?;
        self.runs.push(RunState {
            run_id,
            model: model_name,
            dataset: dataset.to_owned(),
            dataset_id,
            rollup: RunRollup::default(),
            problem_index: HashMap::new(),
            problem_ids: Vec::new(),
            problem_keys: Vec::new(),
            pack: None,
            pack_key: None,
            responses: None,
            responses_key: None,
            rollouts: 0,
            rows: 0,
            file_index,
            verdicts: VerdictTally::default(),
            token_stats: TokenStatsAccumulator::new(),
        });
        self.run_index
            .entry(self.runs[self.runs.len() - 1].model.clone())
            .or_default()
            .insert(dataset.to_owned(), self.runs.len() - 1);
        Ok(self.runs.len() - 1)
    }

    /// The dataset `name` of the import's project, created on first sight; a shared dataset of
    /// that name (the built-in one) is used as it is.
    async fn dataset(&mut self, tx: &mut BulkWriter, name: &str) -> Result<i64, Failure> {
        if let Some(&id) = self.datasets.get(name) {
            return Ok(id);
        }
        let id = match tx.dataset_for(self.project_id, name).await? {
            Some((id, shared)) => {
                if shared {
                    self.shared_datasets.insert(id);
                }
                id
            }
            None => {
                tx.insert_dataset(name, "", "upload", Some(self.project_id))
                    .await?
            }
        };
        self.datasets.insert(name.to_owned(), id);
        Ok(id)
    }

    async fn model(
        &mut self,
        tx: &mut BulkWriter,
        name: &str,
        family: &str,
        step: Option<i64>,
    ) -> Result<i64, Failure> {
        if let Some(&id) = self.models.get(name) {
            return Ok(id);
        }
        let parent_id = match &self.params.parent {
            Some(parent) => Some(tx.model_id(self.project_id, parent).await?.ok_or_else(|| {
                Failure::Invalid(format!(
                    "parent: no model named {parent:?}; import the parent model first or leave parent out"
                ))
            })?),
            None => None,
        };
        let id = match tx.model_id(self.project_id, name).await? {
            Some(id) => {
                // Say-so from the uploader updates what we know about an existing model.
                tx.update_model(
                    id,
                    self.params.stage.as_deref(),
                    parent_id.filter(|&p| p != id),
                    step,
                )
                .await?;
                id
            }
            None => {
                let stage = self
                    .params
                    .stage
                    .clone()
                    .unwrap_or_else(|| guess_stage(name).to_owned());
                tx.insert_model(&NewModel {
                    project_id: self.project_id,
                    name,
                    family: if family != name { family } else { "" },
                    stage: &stage,
                    parent_id,
                    training_step: step,
                    notes: "",
                })
                .await?
            }
        };
        self.models.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The problem `key` of a dataset: found, or created with what the file says. A stored
    /// problem with no prompt, reference or tags gets them from the file.
    async fn problem(
        &mut self,
        tx: &mut BulkWriter,
        dataset_id: i64,
        key: &str,
        prompt: Option<&str>,
        reference: Option<&str>,
        tags: &[String],
    ) -> Result<(i64, Arc<str>), Failure> {
        if let Some((id, stored)) = self.problems.get(&dataset_id).and_then(|p| p.get(key)) {
            if !stored.is_empty() || reference.is_none() {
                return Ok((*id, stored.clone()));
            }
        }
        let shared = self.shared_datasets.contains(&dataset_id);
        let (id, stored_reference) = match tx.problem(dataset_id, key).await? {
            Some(stored) if shared => (stored.id, stored.reference),
            None if shared => {
                return Err(Failure::Invalid(format!(
                    "problem {key:?} is not in the shared dataset this file names; a shared dataset is read-only: name a dataset of your project instead (dataset=)"
                )))
            }
            Some(stored) => {
                let fill_prompt = stored.prompt.is_empty() && prompt.is_some_and(|p| !p.is_empty());
                let fill_reference =
                    stored.reference.is_empty() && reference.is_some_and(|r| !r.is_empty());
                let fill_tags = stored.tags == "[]" && !tags.is_empty();
                if fill_prompt || fill_reference || fill_tags {
                    tx.fill_problem(
                        stored.id,
                        prompt.unwrap_or(""),
                        reference.unwrap_or(""),
                        tags,
                    )
                    .await?;
                }
                let reference = if stored.reference.is_empty() {
                    reference.unwrap_or("").to_owned()
                } else {
                    stored.reference
                };
                (stored.id, reference)
            }
            None => {
                let id = tx
                    .insert_problem(
                        dataset_id,
                        key,
                        prompt.unwrap_or(""),
                        reference.unwrap_or(""),
                        "upload",
                        tags,
                    )
                    .await?;
                (id, reference.unwrap_or("").to_owned())
            }
        };
        let stored_reference: Arc<str> = stored_reference.into();
        self.problems
            .entry(dataset_id)
            .or_default()
            .insert(key.to_owned(), (id, stored_reference.clone()));
        Ok((id, stored_reference))
    }

    /// Writes the remaining rows, each run's per-problem stats and aggregates, links the runs
    /// to the experiment; fails with `Duplicate` when an earlier import stored the same files
    /// for one of these runs' model and dataset.
    pub(super) async fn finish(
        &mut self,
        tx: &mut BulkWriter,
        experiment: &str,
        content_hash: &str,
    ) -> Result<Vec<ImportedRun>, Failure> {
        tx.flush_rollouts().await?;
        let experiment_id = find_or_create_experiment(tx, experiment, self.project_id).await?;
        tx.set_import_project(self.import_id, self.project_id)
            .await?;
        let mut out = Vec::new();
        for state in &mut self.runs {
            if state.rows == 0 {
                // Every record of this run was rejected (skipped): keep no empty run (its
                // packs go with the import's blobs when it fails, or stay unreferenced).
                for pack in [state.pack.take(), state.responses.take()]
                    .into_iter()
                    .flatten()
                {
                    pack.abort().await;
                }
                tx.delete_run(state.run_id).await?;
                continue;
            }
            let source = self
                .sources
                .get(state.file_index)
                .cloned()
                .unwrap_or_default();
            if let Some((run, import, label)) = tx
                .completed_run_with_hash(state.run_id, content_hash)
                .await?
            {
                return Err(Failure::Duplicate {
                    of: import.unwrap_or_else(|| format!("run {run}")),
                    runs: vec![run],
                    why: format!(
                        "run {run} ({label:?}): the same files for the same model and dataset"
                    ),
                });
            }
            if let Some(identity) = &source.run_identity {
                if let Some((run, import, label)) = tx
                    .run_with_source_identity(identity, state.dataset_id, state.run_id)
                    .await?
                {
                    return Err(Failure::Duplicate {
                        of: import.unwrap_or_else(|| format!("run {run}")),
                        runs: vec![run],
                        why: format!(
                            "run {run} ({label:?}): the same {} run ({identity}), from another file of it (an Inspect .eval and its .json, a compressed copy, ...)",
                            source.tool.as_deref().unwrap_or("tool's")
                        ),
                    });
                }
            }
            for pack in [state.pack.take(), state.responses.take()]
                .into_iter()
                .flatten()
            {
                pack.finish().await?;
            }
            let default = state
                .verdicts
                .default_source(self.default_source == VerdictSource::Caplens);
            let stats: Vec<ProblemStats> = state
                .rollup
                .problems
                .iter()
                .zip(&state.problem_ids)
                .enumerate()
                .map(|(position, (p, &problem_id))| {
                    ProblemStats::of_rollup(problem_id, position, p, default)
                })
                .collect();
            let aggregates = state.rollup.aggregates_under(default);
            let [pass_file, pass_caplens] =
                VerdictSource::ALL.map(|s| state.rollup.aggregates_under(s).summary.pass_at_1);
            let max_n = stats.iter().map(|s| s.n).max();
            let uneven = caplens_analysis::passk::uneven_samples(
                state
                    .problem_keys
                    .iter()
                    .zip(&stats)
                    .map(|(k, s)| (k.as_str(), s.n.max(0) as u64)),
            );
            let token_stats = std::mem::take(&mut state.token_stats)
                .finish()
                .map(|t| serde_json::to_string(&t).expect("token stats serialise"));
            let aggregates_json = serde_json::to_string(&aggregates).expect("aggregates serialise");
            let source_json = serde_json::to_string(&source).expect("source info serialises");
            tx.complete_run(
                state.run_id,
                &RunCompletion {
                    aggregates: &aggregates_json,
                    n_per_problem: max_n,
                    source_hash: Some(content_hash),
                    token_stats: token_stats.as_deref(),
                    default_verdicts: default,
                    verdicts: &state.verdicts,
                    source_info: &source_json,
                    source_identity: source.run_identity.as_deref(),
                    response_pack: state.responses_key.as_deref(),
                },
                &stats,
            )
            .await?;
            tx.link_run(experiment_id, state.run_id).await?;
            out.push(ImportedRun {
                id: state.run_id,
                model: state.model.clone(),
                dataset: state.dataset.clone(),
                problems: stats.len() as u64,
                rollouts: stats.iter().map(|s| s.n as u64).sum(),
                pass_at_1: aggregates.summary.pass_at_1,
                pass_at_1_file: pass_file,
                pass_at_1_caplens: pass_caplens,
                default_verdicts: default,
                verdicts: state.verdicts,
                source,
                uneven,
            });
        }
        Ok(out)
    }
}

/// The name of a file without the directories of the machine it was uploaded from.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\'])
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or(name)
}

/// The experiment `slug` of the import's project, created when missing: decided here, in the
/// import's transaction, so an experiment another project made meanwhile is never written into.
async fn find_or_create_experiment(
    tx: &mut BulkWriter,
    slug: &str,
    project_id: i64,
) -> Result<i64, Failure> {
    if let Some((id, project)) = tx.experiment_for(slug).await? {
        if project == Some(project_id) {
            return Ok(id);
        }
        return Err(Failure::Invalid(format!(
            "experiment: the slug {slug:?} is not available in this project; choose another"
        )));
    }
    let name = if slug == DEFAULT_EXPERIMENT {
        "Uploads".to_owned()
    } else {
        slug.to_owned()
    };
    Ok(tx
        .insert_experiment(
            slug,
            &name,
            BulkWriter::CREATED_BY_UPLOAD,
            false,
            project_id,
        )
        .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_labels_are_file_names_not_paths() {
        assert_eq!(
            super::base_name("/home/ana/runs/rl-7b.jsonl"),
            "rl-7b.jsonl"
        );
        assert_eq!(super::base_name("C:\\runs\\rl-7b.jsonl"), "rl-7b.jsonl");
        assert_eq!(super::base_name("rl-7b.jsonl"), "rl-7b.jsonl");
        assert_eq!(super::base_name("dir/"), "dir/");
    }
}
