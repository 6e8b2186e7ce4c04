//! Logic of `caplens verify` and `caplens extract` (issue 4). Plain functions over readers and
//! writers, so the clap wiring stays thin and the behaviour is unit-tested here.
//!
//! - `caplens verify PRED REF` -> [`verify_pair`]; the caller exits 0/1/2 via [`exit_code`].
//! - `caplens verify --tsv FILE` -> [`verify_tsv`]; exit 0 when every line was read.
//! - `caplens extract FILE` -> [`extract_file`].

use caplens_analysis::verifier::{extract_answer, verify_with, Verdict, VerifierConfig};
use std::fmt;
use std::io::{BufRead, Write};

/// Exit code of `caplens verify PRED REF`: 0 equal, 1 different, 2 unverifiable.
pub fn exit_code(verdict: Verdict) -> i32 {
    match verdict {
        Verdict::Equal => 0,
        Verdict::Different => 1,
        Verdict::Unverifiable => 2,
    }
}

/// Verifies one pair and prints `equal`, `different` or `unverifiable` on its own line.
pub fn verify_pair(
    pred: &str,
    reference: &str,
    out: &mut dyn Write,
    config: &VerifierConfig,
) -> std::io::Result<Verdict> {
    let verdict = verify_with(pred, reference, config);
    writeln!(out, "{}", verdict.as_str())?;
    Ok(verdict)
}

/// Why `--tsv` input could not be processed.
#[derive(Debug)]
pub enum TsvError {
    /// Reading input or writing output failed.
    Io(std::io::Error),
    /// A line had no tab; 1-based line number. Verdicts of earlier lines were already printed.
    MissingTab { line: usize },
}

impl fmt::Display for TsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsvError::Io(e) => write!(f, "i/o error: {e}"),
            TsvError::MissingTab { line } => {
                write!(f, "line {line}: expected `pred<TAB>ref`, found no tab")
            }
        }
    }
}

impl std::error::Error for TsvError {}

impl From<std::io::Error> for TsvError {
    fn from(e: std::io::Error) -> Self {
        TsvError::Io(e)
    }
}

/// Reads `pred<TAB>ref` lines and prints one verdict per line, in order.
///
/// The line is split at its *first* tab (a reference may itself contain tabs); a trailing `\r`
/// is dropped, so CRLF files work. A line without a tab is an error naming the line number:
/// silently skipping it would shift every later verdict against its input line, and guessing a
/// verdict would be dishonest. Verdicts printed before the bad line stay valid.
pub fn verify_tsv(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    config: &VerifierConfig,
) -> Result<(), TsvError> {
    // Bytes, not read_line: a line with invalid UTF-8 gets a verdict (on its lossy text)
    // instead of stopping the whole file.
    let mut raw = Vec::new();
    let mut number = 0;
    loop {
        raw.clear();
        if input.read_until(b'\n', &mut raw)? == 0 {
            return Ok(());
        }
        number += 1;
        let line = String::from_utf8_lossy(&raw);
        let text = line.strip_suffix('\n').unwrap_or(&line);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let Some((pred, reference)) = text.split_once('\t') else {
            return Err(TsvError::MissingTab { line: number });
        };
        writeln!(out, "{}", verify_with(pred, reference, config).as_str())?;
    }
}

/// Prints the extracted answer and the rule that found it:
/// `answer: <answer>` / `rule: <rule>` / `after_think: true|false`, or `no answer found`.
pub fn extract_file(text: &str, out: &mut dyn Write) -> std::io::Result<()> {
    match extract_answer(text) {
        Some(found) => {
            writeln!(out, "answer: {}", found.answer)?;
            writeln!(out, "rule: {}", found.rule.as_str())?;
            writeln!(out, "after_think: {}", found.after_think)
        }
        None => writeln!(out, "no answer found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_pair(p: &str, r: &str) -> (Verdict, String) {
        let mut out = Vec::new();
        let v = verify_pair(p, r, &mut out, &VerifierConfig::default()).unwrap();
        (v, String::from_utf8(out).unwrap())
    }

    #[test]
    fn pair_prints_verdict_and_maps_exit_codes() {
        assert_eq!(
            run_pair("\\frac{1}{2}", "0.5"),
            (Verdict::Equal, "equal\n".into())
        );
        assert_eq!(
            run_pair("3", "4"),
            (Verdict::Different, "different\n".into())
        );
        let (v, text) = run_pair("10^{10^{10^{10}}}", "10^{10^{10^{11}}}");
        assert_eq!(
            (v, text.as_str()),
            (Verdict::Unverifiable, "unverifiable\n")
        );
        assert_eq!(
            [Verdict::Equal, Verdict::Different, Verdict::Unverifiable].map(exit_code),
            [0, 1, 2]
        );
    }

    #[test]
    fn tsv_gives_one_verdict_per_line_in_order() {
        let input = "1\t1\n\\frac{2}{4}\t0.5\r\n3\t4\nx\ty\tz\n";
        let mut out = Vec::new();
        verify_tsv(&mut input.as_bytes(), &mut out, &VerifierConfig::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "equal\nequal\ndifferent\ndifferent\n"
        );
    }

    #[test]
    fn tsv_line_without_tab_is_an_error_naming_the_line() {
        let input = "1\t1\nno tab here\n2\t2\n";
        let mut out = Vec::new();
        let err =
            verify_tsv(&mut input.as_bytes(), &mut out, &VerifierConfig::default()).unwrap_err();
        assert!(matches!(err, TsvError::MissingTab { line: 2 }), "{err:?}");
        assert!(err.to_string().starts_with("line 2:"));
        assert_eq!(String::from_utf8(out).unwrap(), "equal\n");
    }

    #[test]
    fn extract_prints_answer_and_rule_or_says_none() {
        let mut out = Vec::new();
        extract_file("<think>hmm</think> so \\boxed{\\frac{1}{2}}.", &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "answer: \\frac{1}{2}\nrule: boxed\nafter_think: true\n"
        );
        let mut out = Vec::new();
        extract_file("Yes.", &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "answer: Yes\nrule: whole_response\nafter_think: false\n"
        );
        let mut out = Vec::new();
        extract_file(
            "I could not work this one out.\nSorry about that.",
            &mut out,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no answer found\n");
    }

    #[test]
    fn a_whole_reference_solution_is_reduced_to_its_answer() {
        assert_eq!(
            run_pair("18", "#### 18"),
            (Verdict::Equal, "equal\n".into())
        );
        assert_eq!(
            run_pair("72", "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"),
            (Verdict::Equal, "equal\n".into())
        );
        assert_eq!(
            run_pair("24", "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"),
            (Verdict::Different, "different\n".into())
        );
    }
}
