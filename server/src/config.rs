//! Runtime configuration: where to listen, which database, where files live.
//!
//! Every setting has a flag and an environment variable (flags win); defaults give the embedded
//! set-up: SQLite at `./data/caplens.db`, blobs under `./data/blobs`, listening on 127.0.0.1:3000.

use std::path::PathBuf;

pub use caplens_store::config::{redact, Backend, DatabaseConfig};

/// The default site root (when neither `--site-root` nor `CAPLENS_SITE_ROOT` is given):
/// `site/` in the binary's target directory when it holds a built `pkg/`, else `./target/site`.
/// Lets the binary run from any directory.
pub fn default_site_root() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        // <target-dir>/<profile>/caplens -> <target-dir>/site
        if let Some(target_dir) = exe.parent().and_then(|p| p.parent()) {
            let site = target_dir.join("site");
            if site.join("pkg").is_dir() {
                return site;
            }
        }
    }
    PathBuf::from("target/site")
}
