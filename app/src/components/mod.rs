//! Reusable pieces of UI.

pub mod common;
pub mod layout;
pub mod theme;
