//! Getting rollouts into caplens. Today: the native JSON Lines reader used by the analysis
//! commands; the importers for other tools' formats build on it.

pub mod native;
