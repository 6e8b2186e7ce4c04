//! Inspect AI logs, `.eval` (zip) and `.json`, docs/formats/inspect.md.
//!
//! Each sample's epoch is one rollout: problem id = sample `id`, sample index = `epoch - 1`.
//! `.eval` archives are read member by member (`samples/{id}_epoch_{n}.json`), never all samples
//! at once; `.json` logs are streamed with serde_json (one sample at a time), so neither needs
//! memory for the whole log. Only the fields caplens uses are materialised, typed where they can
//! be large (the header, `output` and its token data); `messages`, `events` and the rest are
//! skipped while parsing. Untrusted logs are read within `ingest::limits`: a header of at most
//! [`MAX_INSPECT_HEADER_BYTES`](crate::ingest::limits::MAX_INSPECT_HEADER_BYTES) and samples of
//! at most [`MAX_INSPECT_SAMPLE_BYTES`](crate::ingest::limits::MAX_INSPECT_SAMPLE_BYTES)
//! decompressed, of which at most [`MAX_KEPT_BYTES`](crate::ingest::limits::MAX_KEPT_BYTES) are
//! kept; an archive inflates within [`crate::ingest::limits::MAX_INFLATION_RATIO`].
//!
//! The verdict is the first scorer of `scores` in file order (serde_json's `Map` sorts keys, so
//! `scores` is read with [`OrderedObject`](super::common::OrderedObject)).
//!
//! Inspect is Python: its JSON may hold `NaN`/`Infinity` (metric values), read as `null`
//! ([`PythonJson`](super::common::PythonJson)). `.eval` members are stored, deflated (older
//! Inspect) or zstd-compressed (ZIP method 93, current Inspect). What the log says about the run
//! (Inspect version, `eval_id`, `status`, scorer) goes to [`RecordSink::source`] after the
//! samples.
//!
//! Files: this one the importer (sniffing, hints, the read of a whole log, what it says about
//! the run); `archive.rs` `.eval` zip archives (header and sample members, within the limits);
//! `json_log.rs` streamed `.json` logs (each part within its limit); `header.rs` the typed
//! header (EvalSpec, plan, status); `sample.rs` one sample read and made a `RolloutRecord`;
//! `output.rs` a sample's ModelOutput (response, stop reason); `tokens.rs` its token logprobs;
//! `scores.rs` the first scorer as a verdict; `typed.rs` the typed-parsing pieces they share
//! (`Scalar`, `Fields`).

mod archive;
mod header;
mod json_log;
mod output;
mod sample;
mod scores;
mod tokens;
mod typed;

#[cfg(test)]
mod tests;

use super::common::{head_records, partial_object};
use super::openai::LineError;
use crate::ingest::{
    FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordSink, RolloutImporter,
    RolloutRecord, SourceInfo,
};
use archive::{eval_header, is_zip, read_eval, ZIP_MAGIC};
use header::{GenerateConfig, Header};
use json_log::read_json;
use sample::{to_record, SampleSlot};
use serde_json::Value;
use typed::Scalar;

pub struct InspectImporter;

/// Samples of the head that [`InspectImporter::hints`] reads.
const HINT_SAMPLES: usize = 200;

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "inspect",
    title: "Inspect AI log (.eval or .json)",
    extensions: &[".eval", ".json"],
};

impl RolloutImporter for InspectImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        if head.starts_with(ZIP_MAGIC) {
            // A zip: an Inspect log by its extension, or by its member names (local headers
            // carry them in the clear).
            // Names are stored uncompressed whatever the members' compression; every Inspect
            // since the journal was added starts with `_journal/start.json`.
            return file_name.to_ascii_lowercase().ends_with(".eval")
                || contains(head, b"_journal/start.json")
                || contains(head, b"header.json")
                || (contains(head, b"samples/") && contains(head, b"_epoch_"));
        }
        let Some(log) = partial_object(head) else {
            return false;
        };
        log.has("eval")
            && (log.has("samples") || log.has("version") || log.has("plan"))
            && log.get("eval").is_none_or(Value::is_object)
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let header = if is_zip(input)? {
            eval_header(input)?
        } else {
            let mut header = Header::default();
            let result = read_json(input, &mut header, &mut |_, _, _| {
                Err(ReadStop::Sink("header read".into()))
            });
            match result {
                Ok(()) | Err(ReadStop::Sink(_)) => {}
                Err(ReadStop::Input(e)) => return Err(e),
            }
            header
        };
        let head = head_records(self, input, HINT_SAMPLES)?;
        let eval = &header.eval;
        // A setting of the eval's generation config, else of the plan's (older logs).
        let setting = |of: fn(&GenerateConfig) -> &Option<Scalar>| {
            of(&eval.generate)
                .as_ref()
                .or(of(&header.plan.config).as_ref())
        };
        Ok(FileHints {
            model: eval.model.clone(),
            // `inspect_evals/gsm8k` → `gsm8k`.
            dataset: eval
                .task
                .as_deref()
                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                .filter(|t| !t.is_empty()),
            step: None,
            temperature: setting(|c| &c.temperature).and_then(Scalar::number),
            top_p: setting(|c| &c.top_p).and_then(Scalar::number),
            max_tokens: setting(|c| &c.max_tokens).and_then(Scalar::integer),
            n_per_problem: eval.epochs.or(head.per_problem),
            has_tokens: head.has_tokens,
            records_in_head: head.records,
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        let mut seen = Seen::default();
        let header = if is_zip(input)? {
            let header = eval_header(input)?;
            read_eval(input, &header, &mut seen, sink)?;
            header
        } else {
            let mut header = Header::default();
            read_json(input, &mut header, &mut |position, slot, header| match seen
                .sample(slot, position, header)
            {
                Ok(Some(record)) => sink.record(record),
                Ok(None) => Ok(()),
                Err((field, msg)) => sink.reject(input.line_error(
                    position,
                    Some(&field),
                    format!("sample {position} of \"samples\": {msg}"),
                )),
            })?;
            header
        };
        let status = header.status.as_deref().unwrap_or("not given");
        if seen.samples == 0 {
            return Err(ReadStop::Input(input.error(format!(
                "this Inspect log has no samples (status: {status}){}",
                if status == "success" {
                    "; was it run with --no-log-samples?"
                } else {
                    ""
                }
            ))));
        }
        if seen.interrupted == seen.samples {
            return Err(ReadStop::Input(input.error(format!(
                "this Inspect log has no completed sample (status: {status}; the run's end cut short all {} of its samples)",
                seen.samples
            ))));
        }
        sink.source(source_info(&header, seen.scorer.as_ref()))
    }
}

/// What the log says about the run as a whole.
fn source_info(header: &Header, scorer: Option<&(String, &'static str)>) -> SourceInfo {
    let eval = &header.eval;
    let text = |field: &Option<String>| field.clone().filter(|s| !s.is_empty());
    // `eval_id` names one task's evaluation and survives `inspect log convert`; logs older than
    // it have `run_id` (shared by the tasks of one `eval()` call) and `task_id`.
    let run_identity = match (text(&eval.eval_id), text(&eval.run_id), text(&eval.task_id)) {
        (Some(eval_id), _, _) => Some(format!("inspect:{eval_id}")),
        (None, Some(run_id), Some(task_id)) => Some(format!("inspect:{run_id}/{task_id}")),
        _ => None,
    };
    SourceInfo {
        tool: Some(match &eval.inspect_version {
            Some(v) => format!("inspect_ai {v}"),
            None => "inspect_ai".to_string(),
        }),
        run_identity,
        status: header.status.clone().filter(|s| s != "success"),
        verdict: scorer.map(|(name, values)| format!("Inspect scorer {name} ({values})")),
    }
}

/// What the samples of a log showed so far.
#[derive(Debug, Default)]
struct Seen {
    /// Sample slots in the log (whatever became of them).
    samples: u64,
    /// Samples left out because the run's end cut them short.
    interrupted: u64,
    /// The first scorer that gave a verdict, and what its values are.
    scorer: Option<(String, &'static str)>,
}

impl Seen {
    /// The record of one sample; `Ok(None)` for a sample the run's end interrupted (its
    /// `CancelledError` says nothing about the sample, and the run's status is sent).
    fn sample(
        &mut self,
        slot: SampleSlot,
        line: u64,
        header: &Header,
    ) -> Result<Option<RolloutRecord>, LineError> {
        self.samples += 1;
        if interrupted_by_run_end(&slot, header) {
            self.interrupted += 1;
            return Ok(None);
        }
        let (record, scorer) = to_record(slot, line)?;
        if self.scorer.is_none() {
            self.scorer = scorer;
        }
        Ok(Some(record))
    }
}

/// Whether the sample's error is the cancellation of a run that did not succeed (Ctrl-C, or
/// another sample's error stopping the run): Inspect records the samples in flight with a
/// `CancelledError`.
fn interrupted_by_run_end(slot: &SampleSlot, header: &Header) -> bool {
    let SampleSlot::Sample(s) = slot else {
        return false;
    };
    let cancelled = s
        .error
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("CancelledError"));
    cancelled && matches!(header.status.as_deref(), Some("cancelled" | "error"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
