//! Reusable pieces of UI.

pub mod chart;
pub mod common;
pub mod detail;
pub mod layout;
pub mod theme;
