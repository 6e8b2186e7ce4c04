//! Verifier test suite.
