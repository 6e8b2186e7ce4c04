//! Team review's formats (issue 15), pure: what an override request names, the records a review
//! export holds (JSON Lines and CSV, formula-safe) and how they are read back, and comments'
//! markdown (`markdown`). The operations on review data (who may, what is stored) are in
//! `ops::review`.

pub mod markdown;

use serde::{Deserialize, Serialize};

/// What an override request names (REST body; the pages send the same).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The problem: `dataset/key` (or a bare key), or its id.
    #[serde(default)]
    pub problem: Option<serde_json::Value>,
    /// A final answer of the problem (normalised as the answer clusters are).
    #[serde(default)]
    pub answer: Option<String>,
    /// One rollout.
    #[serde(default)]
    pub rollout: Option<i64>,
    /// `correct` or `wrong`.
    pub verdict: String,
    pub reason: String,
}

/// A reviewer's judgement (issue 27): `{"problem": KEY, "answer": TEXT, "verdict"}` or
/// `{"rollout": ID, "verdict"}`; the caller's own, replacing their earlier one on the target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgementRequest {
    #[serde(default)]
    pub problem: Option<serde_json::Value>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub rollout: Option<i64>,
    /// `correct` or `wrong`.
    pub verdict: String,
}

impl OverrideRequest {
    /// A request about a problem known by id: an answer override names the problem, a rollout
    /// override only its rollout (as the REST body would).
    pub fn in_problem(
        problem_id: i64,
        answer: Option<String>,
        rollout: Option<i64>,
        verdict: String,
        reason: String,
    ) -> Self {
        OverrideRequest {
            problem: rollout
                .is_none()
                .then(|| serde_json::Value::from(problem_id)),
            answer,
            rollout,
            verdict,
            reason,
        }
    }
}

/// One line of a review export (JSON Lines; CSV has the same columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRecord {
    /// `label` or `override`.
    pub kind: String,
    /// `dataset/key`: another experiment over the same problems takes the record.
    pub problem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Rollout overrides are kept as (run label, sample index) in the export's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub by: String,
    pub at: String,
}

/// What an import of review records did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewImportReport {
    pub labels: u64,
    pub overrides: u64,
    /// Records skipped, with why (line: reason).
    pub skipped: Vec<String>,
}

/// JSON Lines, or CSV with a header (`kind,problem,label,answer,rollout,verdict,reason,by,at`).
pub fn parse_review_records(
    file_name: &str,
    text: &str,
) -> Result<Vec<(usize, ReviewRecord)>, String> {
    let mut out = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.is_empty() {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: ReviewRecord =
                serde_json::from_str(line).map_err(|e| format!("{file_name}:{}: {e}", i + 1))?;
            out.push((i + 1, r));
        }
        return Ok(out);
    }
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = lines.next().map(|(_, h)| csv_fields(h)).unwrap_or_default();
    let col = |name: &str| header.iter().position(|h| h == name);
    for required in ["kind", "problem"] {
        if col(required).is_none() {
            return Err(format!(
                "{file_name}:1: {required}: the CSV header has no such column"
            ));
        }
    }
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(line);
        let get = |name: &str| {
            col(name)
                .and_then(|c| f.get(c))
                .cloned()
                .filter(|v| !v.is_empty())
        };
        let rollout = match get("rollout") {
            Some(v) => Some(
                v.parse()
                    .map_err(|_| format!("{file_name}:{}: rollout: {v:?} is not an id", i + 1))?,
            ),
            None => None,
        };
        out.push((
            i + 1,
            ReviewRecord {
                kind: get("kind").unwrap_or_default(),
                problem: get("problem").unwrap_or_default(),
                label: get("label"),
                answer: get("answer"),
                rollout,
                verdict: get("verdict"),
                reason: get("reason"),
                by: get("by").unwrap_or_default(),
                at: get("at").unwrap_or_default(),
            },
        ));
    }
    Ok(out)
}

/// One CSV line's fields (RFC 4180 quoting; a line holds one record).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

/// The records as CSV (formula-safe: a field starting with = + - @ gets a leading quote).
pub fn review_csv(records: &[ReviewRecord]) -> String {
    fn cell(v: &str) -> String {
        let v = if v.starts_with(['=', '+', '-', '@']) {
            format!("'{v}")
        } else {
            v.to_owned()
        };
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\"").replace(['\n', '\r'], " "))
        } else {
            v
        }
    }
    let mut out = String::from("kind,problem,label,answer,rollout,verdict,reason,by,at\n");
    for r in records {
        let fields = [
            r.kind.clone(),
            r.problem.clone(),
            r.label.clone().unwrap_or_default(),
            r.answer.clone().unwrap_or_default(),
            r.rollout.map(|x| x.to_string()).unwrap_or_default(),
            r.verdict.clone().unwrap_or_default(),
            r.reason.clone().unwrap_or_default(),
            r.by.clone(),
            r.at.clone(),
        ];
        out.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}
