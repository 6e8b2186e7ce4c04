//! caplens native JSON Lines (docs/formats/native.md) as a [`RolloutImporter`]; the parsing
//! rules live in [`crate::ingest::native`], shared with the analysis commands.

use super::common::first_line_object;
use crate::ingest::native::{parse_line, Needs, Outcome};
use crate::ingest::{
    for_each_line, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutImporter, RolloutRecord, TokenData,
};

pub struct NativeImporter;

/// How many lines of the head [`NativeImporter::hints`] looks at.
const HINT_LINES: u64 = 2000;

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "native",
    title: "caplens native JSON Lines",
    extensions: &[".jsonl", ".jsonl.gz", ".jsonl.zst"],
};

impl RolloutImporter for NativeImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, _file_name: &str, head: &[u8]) -> bool {
        // A line with `choices`, or whose `response` is an object rather than the response
        // text, is an OpenAI-compatible response carrying caplens keys (the openai format),
        // even when it also has `model`, `problem_id` and `correct`.
        // The first line may be longer than the head (hundreds of tokens with top-20
        // logprobs): the keys read before the cut decide. A line without a verdict (a
        // `response` or `answer` to grade) is native too.
        first_line_object(head).is_some_and(|line| {
            line.get("model").is_some_and(|v| v.is_string())
                && line.has("problem_id")
                && ["correct", "n", "response", "answer"]
                    .iter()
                    .any(|k| line.has(k))
                && !line.has("choices")
                && !line.get("response").is_some_and(|r| r.is_object())
        })
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let mut hints = FileHints::default();
        let mut models = Vec::<String>::new();
        let mut datasets = Vec::<String>::new();
        let mut per_problem = std::collections::HashMap::<String, i64>::new();
        let mut sink = super::common::NullSink;
        let result = for_each_line(input, &mut sink, |line_no, text, _| {
            if line_no > HINT_LINES {
                return Err(ReadStop::Sink("enough".into()));
            }
            if let Ok(line) = parse_line(text, Needs::all()) {
                hints.records_in_head += 1;
                if !models.iter().any(|m| *m == line.model) {
                    models.push(line.model.to_string());
                }
                if let Some(d) = &line.dataset {
                    if !datasets.iter().any(|x| x == d) {
                        datasets.push(d.to_string());
                    }
                }
                hints.has_tokens |= line.tokens.is_some() || line.top_logprobs.is_some();
                if hints.step.is_none() {
                    hints.step = line.step;
                }
                *per_problem
                    .entry(line.problem_key().into_owned())
                    .or_default() += line.samples() as i64;
            }
            Ok(())
        });
        match result {
            Ok(()) | Err(ReadStop::Sink(_)) => {}
            Err(ReadStop::Input(e)) => return Err(e),
        }
        // One model / dataset per file is the common case; several are imported as several runs.
        if models.len() == 1 {
            hints.model = models.pop();
        }
        if datasets.len() == 1 {
            hints.dataset = datasets.pop();
        }
        hints.n_per_problem = per_problem.values().copied().max();
        Ok(hints)
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        for_each_line(input, sink, |line_no, text, sink| {
            match parse_line(text, Needs::all()) {
                Ok(line) => {
                    let tokens = line.tokens.as_ref().map(|tokens| TokenData {
                        tokens: tokens.iter().map(|t| t.to_string()).collect(),
                        logprobs: line
                            .token_logprobs
                            .clone()
                            .unwrap_or_else(|| vec![None; tokens.len()]),
                        top_logprobs: line.top_logprobs.as_ref().map(|rows| {
                            rows.iter()
                                .map(|row| row.iter().map(|(t, lp)| (t.to_string(), *lp)).collect())
                                .collect()
                        }),
                        entropies: line.token_entropies.clone(),
                        rbf: line.token_rbf.clone(),
                        hidden_norms: line.token_hidden_norms.clone(),
                    });
                    let record = RolloutRecord {
                        line: line_no,
                        model: Some(line.model.to_string()),
                        dataset: line.dataset.as_deref().map(str::to_owned),
                        problem_id: line.problem_id.to_string(),
                        prompt: line.prompt.as_deref().map(str::to_owned),
                        tags: line
                            .tags
                            .as_ref()
                            .map(|t| t.iter().map(|s| s.to_string()).collect())
                            .unwrap_or_default(),
                        reference: line.reference.as_deref().map(str::to_owned),
                        sample: line.sample,
                        outcome: match line.outcome {
                            Outcome::Rollout { correct } => RecordOutcome::Graded(correct),
                            Outcome::Counts { n, c } => RecordOutcome::Counts { n, c },
                            Outcome::Ungraded => RecordOutcome::Ungraded,
                        },
                        response: line.response.as_deref().map(str::to_owned),
                        answer: line.answer.as_deref().map(str::to_owned),
                        finish_reason: line.finish_reason.as_deref().map(str::to_owned),
                        step: line.step,
                        tokens,
                    };
                    sink.record(record)
                }
                Err((field, message)) => sink.reject(input.line_error(line_no, field, message)),
            }
        })
    }
}
