//! Token categories of the paper's table 1, counted per response as in table 5 (paper-notes
//! item 12).
//!
//! The paper gives examples, not a lexicon; this module fixes one and documents it:
//!
//! - **Formal reasoning**: numbers (`1`, `3.14`, `1,000`); everything inside LaTeX maths
//!   (`$...$`, `$$...$$`, `\(...\)`, `\[...\]`) including the delimiters; LaTeX commands
//!   (`\frac`, `\sqrt`, `\sum`, and escapes like `\{`); operator and maths symbols
//!   ([`is_math_symbol`]); single-letter variables outside maths except `a`, `A` and `I`, which
//!   are English words; maths names in [`MATH_WORDS`] (`sin`, `log`, `pi`, `theta`, ...).
//! - **Logical structuring**: connectives in [`LOGICAL_WORDS`] — causal (therefore, because),
//!   contrastive (however, but), progressive (first, next, finally), parallel (and, also).
//! - **Metacognitive**: the phrases of [`METACOGNITIVE_PHRASES`] — verifying ("let's check"),
//!   revising ("wait", "correction"), summarising ("in summary"), planning ("first, I will").
//!   Phrases match case-insensitively on consecutive words outside maths; commas between the
//!   words are allowed ("First, I will" matches "first i will"); the longest phrase wins and
//!   its words are not counted again (the "first" of "first, I will" is not logical).
//! - **Semantic support**: every other word and punctuation mark (the, is, of, problem, ., ,).
//!
//! A *unit* is what gets one category: a number, a word (letters with inner apostrophes or
//! hyphens: "let's", "double-check"), a LaTeX command, a single symbol, or a whole matched
//! phrase. Counts are counts of units (a phrase counts once). Whitespace is not a unit.

/// The four categories of table 1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenCategory {
    FormalReasoning,
    LogicalStructuring,
    Metacognitive,
    SemanticSupport,
}

/// Metacognitive phrases, lowercase, words separated by single spaces (straight apostrophes;
/// curly ones in the text are folded).
pub const METACOGNITIVE_PHRASES: &[&str] = &[
    // verifying
    "let's check",
    "let me check",
    "let us check",
    "let's verify",
    "let me verify",
    "let us verify",
    "let's double-check",
    "let me double-check",
    "double-check",
    "double check",
    "let me confirm",
    "let's confirm",
    "to verify",
    "to confirm",
    "sanity check",
    "let me recheck",
    "recheck",
    // revising
    "wait",
    "correction",
    "hmm",
    "hmmm",
    "oops",
    "i made a mistake",
    "i made an error",
    "that's not right",
    "that is not right",
    "on second thought",
    "let me reconsider",
    "let's reconsider",
    "let me re-examine",
    "let's re-examine",
    "let me recalculate",
    "let's recalculate",
    "let me try again",
    "let's try again",
    // summarising
    "in summary",
    "to summarize",
    "to summarise",
    "in conclusion",
    "to conclude",
    "in short",
    // planning
    "first, i will",
    "first i'll",
    "i will first",
    "let me start by",
    "let's start by",
    "let's begin by",
    "let me think",
    "let's think",
    "my plan is",
    "the plan is",
    "step by step",
];

/// Logical connectives (lowercase).
pub const LOGICAL_WORDS: &[&str] = &[
    // causal
    "therefore",
    "thus",
    "hence",
    "so",
    "because",
    "since",
    "consequently",
    "accordingly",
    // contrastive
    "however",
    "but",
    "although",
    "though",
    "whereas",
    "yet",
    "nevertheless",
    "nonetheless",
    "instead",
    "otherwise",
    "conversely",
    "alternatively",
    // progressive
    "first",
    "firstly",
    "second",
    "secondly",
    "third",
    "thirdly",
    "next",
    "then",
    "finally",
    "lastly",
    "subsequently",
    "afterwards",
    // parallel
    "and",
    "also",
    "additionally",
    "moreover",
    "furthermore",
    "besides",
    "similarly",
    "likewise",
    "or",
];

/// Words that name maths objects outside LaTeX (lowercase).
pub const MATH_WORDS: &[&str] = &[
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "frac", "mod", "gcd",
    "lcm", "det", "lim", "max", "min", "pi", "theta", "alpha", "beta", "gamma", "delta", "epsilon",
    "lambda", "mu", "sigma", "omega", "phi",
];

/// Operator and maths symbols counted as formal reasoning outside LaTeX maths: ASCII operators
/// and brackets, Greek letters, and the Unicode mathematical-operator blocks.
pub fn is_math_symbol(c: char) -> bool {
    matches!(c, '+' | '-' | '*' | '/' | '=' | '<' | '>' | '^' | '_' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '%')
        || matches!(c, '±' | '×' | '÷' | '·' | '°' | '√' | '∞' | '≤' | '≥' | '≠' | '≈' | '∑' | '∏' | '∫' | '∈')
        || ('\u{0391}'..='\u{03C9}').contains(&c) // Greek
        || ('\u{2200}'..='\u{22FF}').contains(&c) // Mathematical Operators
        || ('\u{27C0}'..='\u{27EF}').contains(&c) // Misc. Mathematical Symbols-A
        || ('\u{2980}'..='\u{2AFF}').contains(&c) // Misc. Mathematical Symbols-B, Supplemental Operators
}

/// A categorised span of the input text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CategorizedUnit {
    pub start: usize,
    pub end: usize,
    pub category: TokenCategory,
}

/// Units per category in one response (table 5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CategoryCounts {
    pub formal_reasoning: u64,
    pub logical_structuring: u64,
    pub metacognitive: u64,
    pub semantic_support: u64,
}

impl CategoryCounts {
    /// Adds one unit of a category.
    pub fn add(&mut self, category: TokenCategory) {
        match category {
            TokenCategory::FormalReasoning => self.formal_reasoning += 1,
            TokenCategory::LogicalStructuring => self.logical_structuring += 1,
            TokenCategory::Metacognitive => self.metacognitive += 1,
            TokenCategory::SemanticSupport => self.semantic_support += 1,
        }
    }

    /// All units.
    pub fn total(&self) -> u64 {
        self.formal_reasoning
            + self.logical_structuring
            + self.metacognitive
            + self.semantic_support
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Word,
    Command,
    Symbol,
    MathDelimiter,
}

#[derive(Debug, Clone, Copy)]
struct RawUnit {
    start: usize,
    end: usize,
    kind: Kind,
    in_math: bool,
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// Splits text into raw units, tracking LaTeX maths mode.
fn lex(text: &str) -> Vec<RawUnit> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut units = Vec::new();
    // The delimiter that closes the current maths span, if inside one.
    let mut closing: Option<&'static str> = None;
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let mut push = |len: usize, kind: Kind, in_math: bool| {
            units.push(RawUnit {
                start,
                end: end_of(i + len),
                kind,
                in_math,
            });
            len
        };
        let step = if c.is_whitespace() {
            1
        } else if c == '$' || (c == '\\' && matches!(next, Some('(' | ')' | '[' | ']'))) {
            let token: &'static str = match (c, next) {
                ('$', Some('$')) => "$$",
                ('$', _) => "$",
                (_, Some('(')) => "\\(",
                (_, Some(')')) => "\\)",
                (_, Some('[')) => "\\[",
                _ => "\\]",
            };
            match closing {
                Some(close) if close == token => closing = None,
                Some(_) => {}
                None => {
                    closing = match token {
                        "\\(" => Some("\\)"),
                        "\\[" => Some("\\]"),
                        "$" | "$$" => Some(token),
                        _ => None, // a stray closing delimiter opens nothing
                    }
                }
            }
            push(token.len(), Kind::MathDelimiter, true)
        } else if c == '\\' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1.is_ascii_alphabetic() {
                j += 1;
            }
            // `\frac` is a command; `\{` or `\\` an escaped symbol; a trailing `\` stands alone.
            let len = if j > i + 1 {
                j - i
            } else {
                (chars.len() - i).min(2)
            };
            push(len, Kind::Command, closing.is_some())
        } else if c.is_ascii_digit() {
            let mut j = i + 1;
            while j < chars.len() {
                let d = chars[j].1;
                let inner_sep = (d == '.' || d == ',')
                    && chars.get(j + 1).is_some_and(|&(_, e)| e.is_ascii_digit());
                if d.is_ascii_digit() || inner_sep {
                    j += if inner_sep { 2 } else { 1 };
                } else {
                    break;
                }
            }
            push(j - i, Kind::Number, closing.is_some())
        } else if c.is_alphabetic() {
            let mut j = i + 1;
            while j < chars.len() {
                let d = chars[j].1;
                let joins = (is_apostrophe(d) || d == '-')
                    && chars.get(j + 1).is_some_and(|&(_, e)| e.is_alphabetic());
                if d.is_alphabetic() || joins {
                    j += if joins { 2 } else { 1 };
                } else {
                    break;
                }
            }
            push(j - i, Kind::Word, closing.is_some())
        } else {
            push(1, Kind::Symbol, closing.is_some())
        };
        i += step;
    }
    units
}

fn fold_word(w: &str) -> String {
    w.chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase()
}

/// Category of one word standing alone (no phrase or maths context): the word lists and the
/// single-letter rule of the module doc.
pub fn classify_word(word: &str) -> TokenCategory {
    let w = fold_word(word);
    if METACOGNITIVE_PHRASES.contains(&w.as_str()) {
        TokenCategory::Metacognitive
    } else if LOGICAL_WORDS.contains(&w.as_str()) {
        TokenCategory::LogicalStructuring
    } else if MATH_WORDS.contains(&w.as_str())
        || (word.chars().count() == 1 && !matches!(word, "a" | "A" | "I"))
    {
        TokenCategory::FormalReasoning
    } else {
        TokenCategory::SemanticSupport
    }
}

/// Phrases split into words, longest first, built once per call (the list is small).
fn phrase_words() -> Vec<Vec<String>> {
    let mut p: Vec<Vec<String>> = METACOGNITIVE_PHRASES
        .iter()
        .map(|s| {
            s.split(' ')
                .map(|w| w.trim_end_matches(',').to_string())
                .collect()
        })
        .collect();
    p.sort_by_key(|w| std::cmp::Reverse(w.len()));
    p
}

/// Tries to match `phrase` at unit `i`; returns the index of its last unit. `folded[k]` is the
/// folded text of word unit `k` (empty for other units), computed once per text rather than
/// once per phrase tried.
fn match_phrase(
    text: &str,
    units: &[RawUnit],
    folded: &[String],
    i: usize,
    phrase: &[String],
) -> Option<usize> {
    let mut k = i;
    for (n, word) in phrase.iter().enumerate() {
        if n > 0 {
            k += 1;
            // Commas may sit between the words of a phrase.
            while units.get(k).is_some_and(|u| {
                u.kind == Kind::Symbol && !u.in_math && &text[u.start..u.end] == ","
            }) {
                k += 1;
            }
        }
        let u = units.get(k)?;
        if u.kind != Kind::Word || u.in_math || folded[k] != *word {
            return None;
        }
    }
    Some(k)
}

/// Splits a response into categorised units (see the module doc).
pub fn categorize_text(text: &str) -> Vec<CategorizedUnit> {
    let units = lex(text);
    let phrases = phrase_words();
    let folded: Vec<String> = units
        .iter()
        .map(|u| {
            if u.kind == Kind::Word && !u.in_math {
                fold_word(&text[u.start..u.end])
            } else {
                String::new()
            }
        })
        .collect();
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        if u.kind == Kind::Word && !u.in_math {
            if let Some(last) = phrases
                .iter()
                .find_map(|p| match_phrase(text, &units, &folded, i, p))
            {
                out.push(CategorizedUnit {
                    start: u.start,
                    end: units[last].end,
                    category: TokenCategory::Metacognitive,
                });
                i = last + 1;
                continue;
            }
        }
        let category = if u.in_math {
            TokenCategory::FormalReasoning
        } else {
            match u.kind {
                Kind::Number | Kind::Command | Kind::MathDelimiter => {
                    TokenCategory::FormalReasoning
                }
                Kind::Word => classify_word(&text[u.start..u.end]),
                Kind::Symbol => {
                    if text[u.start..u.end].chars().all(is_math_symbol) {
                        TokenCategory::FormalReasoning
                    } else {
                        TokenCategory::SemanticSupport
                    }
                }
            }
        };
        out.push(CategorizedUnit {
            start: u.start,
            end: u.end,
            category,
        });
        i += 1;
    }
    out
}

/// Per-response category counts (table 5).
pub fn count_categories(text: &str) -> CategoryCounts {
    let mut c = CategoryCounts::default();
    categorize_text(text).iter().for_each(|u| c.add(u.category));
    c
}

/// Which category a token gets when it overlaps units of several: the rarer, more informative
/// one, in the order metacognitive > logical > formal > semantic.
fn precedence(c: TokenCategory) -> u8 {
    match c {
        TokenCategory::Metacognitive => 3,
        TokenCategory::LogicalStructuring => 2,
        TokenCategory::FormalReasoning => 1,
        TokenCategory::SemanticSupport => 0,
    }
}

/// Categories of model tokens (decoded strings, in order), using the context of the whole text:
/// the tokens are concatenated, the text is categorised, and each token takes the category of
/// the units it overlaps (when several: metacognitive > logical > formal > semantic). `"Let"`, `"'s"`, `" check"` are all
/// metacognitive. A token that is only whitespace (or empty) gets `None`.
pub fn categorize_tokens<S: AsRef<str>>(tokens: &[S]) -> Vec<Option<TokenCategory>> {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(tokens.len());
    for t in tokens {
        let start = text.len();
        text.push_str(t.as_ref());
        spans.push((start, text.len()));
    }
    let units = categorize_text(&text);
    let mut first = 0;
    spans
        .iter()
        .map(|&(s, e)| {
            while first < units.len() && units[first].end <= s {
                first += 1;
            }
            units[first..]
                .iter()
                .take_while(|u| u.start < e)
                .map(|u| u.category)
                .max_by_key(|&c| precedence(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TokenCategory::*;

    fn cats(text: &str) -> Vec<(String, TokenCategory)> {
        categorize_text(text)
            .into_iter()
            .map(|u| (text[u.start..u.end].to_string(), u.category))
            .collect()
    }

    #[test]
    fn table_one_examples() {
        for w in ["1", "3.14", "+", "*", "=", "x", "y", "π", "\\sqrt", "\\sum"] {
            assert_eq!(cats(w)[0].1, FormalReasoning, "{w}");
        }
        for w in [
            "therefore",
            "because",
            "however",
            "but",
            "first",
            "next",
            "finally",
            "and",
            "also",
        ] {
            assert_eq!(cats(w), vec![(w.to_string(), LogicalStructuring)]);
        }
        for p in [
            "Let's check",
            "Correction",
            "Wait",
            "In summary",
            "First, I will",
        ] {
            assert_eq!(cats(p), vec![(p.to_string(), Metacognitive)], "{p}");
        }
        for w in ["the", "is", "of", "problem", "solution", "correct", "final"] {
            assert_eq!(cats(w), vec![(w.to_string(), SemanticSupport)]);
        }
    }

    #[test]
    fn phrases_in_running_text() {
        let t = "So x = 12. Wait, let’s check: in summary the answer is $\\frac{1}{2}$.";
        let c = cats(t);
        let meta: Vec<&str> = c
            .iter()
            .filter(|(_, k)| *k == Metacognitive)
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(meta, vec!["Wait", "let’s check", "in summary"]);
        assert!(c.contains(&("So".into(), LogicalStructuring)));
        assert!(c.contains(&("12".into(), FormalReasoning)));
        assert!(c.contains(&("{".into(), FormalReasoning)));
        assert!(c.contains(&(":".into(), SemanticSupport)));
        // "first" is logical alone, but part of the planning phrase otherwise.
        assert_eq!(count_categories("First, compute").logical_structuring, 1);
        let planning = count_categories("First, I will compute");
        assert_eq!(
            (planning.metacognitive, planning.logical_structuring),
            (1, 0)
        );
    }

    #[test]
    fn maths_mode_and_single_letters() {
        // Inside $...$ even English words are formal; outside, 'a' and 'I' are English.
        let c = count_categories("$a and b$");
        assert_eq!((c.formal_reasoning, c.logical_structuring), (5, 0));
        assert_eq!(classify_word("a"), SemanticSupport);
        assert_eq!(classify_word("I"), SemanticSupport);
        assert_eq!(classify_word("n"), FormalReasoning);
        assert_eq!(classify_word("Theta"), FormalReasoning);
        let c = count_categories("\\[ x^2 \\] then a cat");
        // \[ x ^ 2 \] are formal; then is logical; a, cat are semantic.
        assert_eq!(
            (
                c.formal_reasoning,
                c.logical_structuring,
                c.semantic_support
            ),
            (5, 1, 2)
        );
        assert_eq!(
            cats("1,000.5 apples")[0],
            ("1,000.5".into(), FormalReasoning)
        );
        assert_eq!(
            cats("double-check")[0],
            ("double-check".into(), Metacognitive)
        );
    }

    #[test]
    fn model_tokens_take_context_categories() {
        let toks = [
            "Let",
            "'s",
            " check",
            ":",
            " ",
            "x",
            "=",
            "1",
            " therefore",
            "",
        ];
        let c = categorize_tokens(&toks);
        assert_eq!(
            c,
            vec![
                Some(Metacognitive),
                Some(Metacognitive),
                Some(Metacognitive),
                Some(SemanticSupport),
                None,
                Some(FormalReasoning),
                Some(FormalReasoning),
                Some(FormalReasoning),
                Some(LogicalStructuring),
                None
            ]
        );
        // A token spanning a full stop and a connective takes the connective.
        assert_eq!(
            categorize_tokens(&[".\n\nTherefore"]),
            vec![Some(LogicalStructuring)]
        );
    }

    #[test]
    fn counts_and_empty_text() {
        assert_eq!(count_categories(""), CategoryCounts::default());
        assert_eq!(count_categories("   \n"), CategoryCounts::default());
        let c = count_categories("The answer is 42 because 6 * 7 = 42.");
        assert_eq!(c.total(), 11);
        assert_eq!(
            (
                c.formal_reasoning,
                c.logical_structuring,
                c.semantic_support
            ),
            (6, 1, 4)
        );
    }

    proptest! {
        #[test]
        fn units_are_ordered_disjoint_and_cover_non_whitespace(text in "[a-zA-Z0-9 ,.$\\\\{}+=’'π-]{0,80}") {
            let units = categorize_text(&text);
            let mut prev_end = 0;
            for u in &units {
                prop_assert!(u.start >= prev_end && u.end > u.start && u.end <= text.len());
                prop_assert!(text.is_char_boundary(u.start) && text.is_char_boundary(u.end));
                prop_assert!(text[prev_end..u.start].chars().all(char::is_whitespace));
                prev_end = u.end;
            }
            prop_assert!(text[prev_end..].chars().all(char::is_whitespace));
            prop_assert_eq!(count_categories(&text).total(), units.len() as u64);
        }

        #[test]
        fn token_split_does_not_change_whitespace_handling(text in "[a-z0-9 ,.$+=]{0,60}", cut in 0usize..60) {
            let cut = cut.min(text.len());
            let c = categorize_tokens(&[&text[..cut], &text[cut..]]);
            prop_assert_eq!(c.len(), 2);
            prop_assert_eq!(c[0].is_none(), text[..cut].trim().is_empty());
            prop_assert_eq!(c[1].is_none(), text[cut..].trim().is_empty());
        }
    }
}
