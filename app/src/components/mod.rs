//! Reusable pieces of UI.

pub mod analysis;
pub mod chart;
pub mod common;
pub mod detail;
pub mod glossary;
pub mod layout;
pub mod review;
pub mod theme;
