//! Reusable pieces of UI.

pub mod common;
pub mod detail;
pub mod layout;
pub mod theme;
