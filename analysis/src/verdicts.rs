//! Two verdicts per rollout, kept side by side: the one the file carries (Inspect's C/I, lm-eval's
//! `exact_match`, verl's `acc`) and caplens' verifier's. Neither wins silently: every view can be
//! switched between them, and a run counts how often they agree.

use serde::{Deserialize, Serialize};

/// Whose verdicts a view counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum VerdictSource {
    /// The file's own verdict where it has one, else caplens' (the default for every format that
    /// carries verdicts: caplens then shows the number the tool printed).
    #[default]
    File,
    /// caplens' verifier where a reference answer exists, else the file's.
    Caplens,
}

impl VerdictSource {
    pub const ALL: [VerdictSource; 2] = [VerdictSource::File, VerdictSource::Caplens];

    /// `file` or `caplens`, as in URLs (`verdicts=caplens`) and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictSource::File => "file",
            VerdictSource::Caplens => "caplens",
        }
    }

    pub fn parse(s: &str) -> Option<VerdictSource> {
        VerdictSource::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What caplens' verifier said about one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaplensVerdict {
    /// No reference answer to compare with: caplens gives no verdict.
    NoReference,
    /// A reference exists but no answer could be found in the response: wrong.
    NoAnswer,
    Equal,
    Different,
    /// The verifier could not decide within its bounds: counted wrong, and reported.
    Unverifiable,
}

impl CaplensVerdict {
    /// Whether this counts as correct; `None` without a reference.
    pub fn correct(self) -> Option<bool> {
        match self {
            CaplensVerdict::NoReference => None,
            CaplensVerdict::Equal => Some(true),
            CaplensVerdict::NoAnswer | CaplensVerdict::Different | CaplensVerdict::Unverifiable => {
                Some(false)
            }
        }
    }

    /// The stored code (`rollouts.caplens_verdict`): NULL without a reference.
    pub fn code(self) -> Option<i64> {
        match self {
            CaplensVerdict::NoReference => None,
            CaplensVerdict::Different => Some(0),
            CaplensVerdict::Equal => Some(1),
            CaplensVerdict::Unverifiable => Some(2),
            CaplensVerdict::NoAnswer => Some(3),
        }
    }

    pub fn from_code(code: Option<i64>) -> CaplensVerdict {
        match code {
            None => CaplensVerdict::NoReference,
            Some(1) => CaplensVerdict::Equal,
            Some(2) => CaplensVerdict::Unverifiable,
            Some(3) => CaplensVerdict::NoAnswer,
            Some(_) => CaplensVerdict::Different,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaplensVerdict::NoReference => "no_reference",
            CaplensVerdict::NoAnswer => "no_answer",
            CaplensVerdict::Equal => "equal",
            CaplensVerdict::Different => "different",
            CaplensVerdict::Unverifiable => "unverifiable",
        }
    }
}

/// Both verdicts of one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutVerdicts {
    /// The file's verdict; `None` when the file gives none.
    pub file: Option<bool>,
    pub caplens: CaplensVerdict,
}

impl RolloutVerdicts {
    /// The verdict a view of `source` counts: that source's when it has one, else the other's;
    /// `None` when neither can grade the rollout.
    pub fn under(self, source: VerdictSource) -> Option<bool> {
        match source {
            VerdictSource::File => self.file.or(self.caplens.correct()),
            VerdictSource::Caplens => self.caplens.correct().or(self.file),
        }
    }
}

/// How a run's (or an import's) rollouts were graded: the counts every import report and run
/// page show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictTally {
    /// Rollouts that carry the file's verdict.
    pub graded_by_file: u64,
    /// Rollouts caplens' verifier decided (equal or different, including "no answer found").
    pub graded_by_caplens: u64,
    /// Rollouts the verifier could not decide (counted wrong under caplens' verdicts).
    pub unverifiable: u64,
    /// Rollouts where caplens found no answer in the response (counted wrong).
    pub no_answer: u64,
    /// Rollouts with neither a file verdict nor a decided caplens verdict.
    pub ungraded: u64,
    /// Of the rollouts with both verdicts: how many agree and disagree.
    pub agree: u64,
    pub disagree: u64,
}

impl VerdictTally {
    pub fn push(&mut self, v: RolloutVerdicts) {
        let decided = matches!(
            v.caplens,
            CaplensVerdict::Equal | CaplensVerdict::Different | CaplensVerdict::NoAnswer
        );
        self.graded_by_file += v.file.is_some() as u64;
        self.graded_by_caplens += decided as u64;
        self.unverifiable += (v.caplens == CaplensVerdict::Unverifiable) as u64;
        self.no_answer += (v.caplens == CaplensVerdict::NoAnswer) as u64;
        self.ungraded += (v.file.is_none() && !decided) as u64;
        if let (Some(file), Some(caplens)) = (v.file, v.caplens.correct()) {
            if file == caplens {
                self.agree += 1;
            } else {
                self.disagree += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &VerdictTally) {
        self.graded_by_file += other.graded_by_file;
        self.graded_by_caplens += other.graded_by_caplens;
        self.unverifiable += other.unverifiable;
        self.no_answer += other.no_answer;
        self.ungraded += other.ungraded;
        self.agree += other.agree;
        self.disagree += other.disagree;
    }

    /// Share of the doubly graded rollouts on which the file and caplens agree.
    pub fn agreement(&self) -> Option<f64> {
        let both = self.agree + self.disagree;
        (both > 0).then(|| self.agree as f64 / both as f64)
    }

    /// The source a run shows by default: the file's verdicts when it has any (so caplens shows
    /// the number the tool printed), caplens' otherwise — or when the uploader asked to regrade.
    pub fn default_source(&self, regrade: bool) -> VerdictSource {
        if regrade || self.graded_by_file == 0 {
            VerdictSource::Caplens
        } else {
            VerdictSource::File
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_falls_back_to_the_other() {
        let only_file = RolloutVerdicts {
            file: Some(true),
            caplens: CaplensVerdict::NoReference,
        };
        assert_eq!(only_file.under(VerdictSource::Caplens), Some(true));
        let only_caplens = RolloutVerdicts {
            file: None,
            caplens: CaplensVerdict::Different,
        };
        assert_eq!(only_caplens.under(VerdictSource::File), Some(false));
        let both = RolloutVerdicts {
            file: Some(false),
            caplens: CaplensVerdict::Equal,
        };
        assert_eq!(both.under(VerdictSource::File), Some(false));
        assert_eq!(both.under(VerdictSource::Caplens), Some(true));
        let neither = RolloutVerdicts {
            file: None,
            caplens: CaplensVerdict::NoReference,
        };
        assert_eq!(neither.under(VerdictSource::File), None);
    }

    #[test]
    fn codes_round_trip_and_parse() {
        for v in [
            CaplensVerdict::NoReference,
            CaplensVerdict::NoAnswer,
            CaplensVerdict::Equal,
            CaplensVerdict::Different,
            CaplensVerdict::Unverifiable,
        ] {
            assert_eq!(CaplensVerdict::from_code(v.code()), v);
        }
        for s in VerdictSource::ALL {
            assert_eq!(VerdictSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(VerdictSource::parse("reviewed"), None);
    }

    #[test]
    fn the_tally_counts_agreement_only_where_both_graded() {
        let mut t = VerdictTally::default();
        t.push(RolloutVerdicts {
            file: Some(true),
            caplens: CaplensVerdict::Equal,
        });
        t.push(RolloutVerdicts {
            file: Some(true),
            caplens: CaplensVerdict::Different,
        });
        t.push(RolloutVerdicts {
            file: Some(false),
            caplens: CaplensVerdict::Unverifiable,
        });
        t.push(RolloutVerdicts {
            file: None,
            caplens: CaplensVerdict::NoAnswer,
        });
        t.push(RolloutVerdicts {
            file: Some(true),
            caplens: CaplensVerdict::NoReference,
        });
        t.push(RolloutVerdicts {
            file: None,
            caplens: CaplensVerdict::Unverifiable,
        });
        assert_eq!(
            t,
            VerdictTally {
                graded_by_file: 4,
                graded_by_caplens: 3,
                unverifiable: 2,
                no_answer: 1,
                ungraded: 1,
                agree: 2,
                disagree: 1,
            }
        );
        assert_eq!(t.agreement(), Some(2.0 / 3.0));
        assert_eq!(t.default_source(false), VerdictSource::File);
        assert_eq!(t.default_source(true), VerdictSource::Caplens);
        assert_eq!(
            VerdictTally::default().default_source(false),
            VerdictSource::Caplens
        );
    }
}
