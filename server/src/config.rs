//! Runtime configuration: where to listen, which database, where files live.
//!
//! Every setting has a flag and an environment variable (flags win); defaults give the embedded
//! set-up: SQLite at `./data/caplens.db`, blobs under `./data/blobs`, listening on 127.0.0.1:3000.

use std::{net::SocketAddr, path::PathBuf};

use crate::error::StartupError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A validated database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub backend: Backend,
    pub url: String,
}

impl DatabaseConfig {
    /// From `DATABASE_URL` (or the flag), or the default SQLite file in the data directory.
    pub fn resolve(url: Option<&str>, data_dir: &std::path::Path) -> Result<Self, StartupError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            let path = data_dir.join("caplens.db");
            return Ok(Self {
                backend: Backend::Sqlite,
                url: format!("sqlite://{}?mode=rwc", path.display()),
            });
        };
        let bad = |reason: &str| StartupError::BadDatabaseUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url.split_once(':').ok_or_else(|| bad("it has no scheme"))?;
        match scheme {
            "sqlite" => {
                if rest.trim_start_matches('/').is_empty() {
                    return Err(bad("it names no file"));
                }
                let url = if rest.contains(":memory:") || rest.contains("mode=") {
                    url.to_string()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                Ok(Self { backend: Backend::Sqlite, url })
            }
            "postgres" | "postgresql" => {
                let after = rest.strip_prefix("//").ok_or_else(|| bad("expected postgres://host/..."))?;
                if after.is_empty() {
                    return Err(bad("it names no host"));
                }
                Ok(Self { backend: Backend::Postgres, url: url.to_string() })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other:?} (caplens speaks sqlite and postgres)"
            ))),
        }
    }

    /// The URL with any password hidden, for messages and logs.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }
}

/// Hides the password of `scheme://user:password@host/...`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// Everything `caplens serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub database: DatabaseConfig,
    pub data_dir: PathBuf,
    /// Where the built site lives (`pkg/caplens.js`, `pkg/caplens.wasm`, `pkg/caplens.css`, assets).
    pub site_root: PathBuf,
    /// Load the demo experiment when the database has no experiment at all.
    pub load_demo: bool,
}

/// The default site root: `CAPLENS_SITE_ROOT`, else `target/site` next to the binary's workspace,
/// else `./target/site`. Lets the binary run from any directory.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn default_is_sqlite_in_the_data_dir() {
        let c = DatabaseConfig::resolve(None, Path::new("data")).unwrap();
        assert_eq!(c.backend, Backend::Sqlite);
        assert_eq!(c.url, "sqlite://data/caplens.db?mode=rwc");
    }

    #[test]
    fn postgres_urls_are_recognised_and_passwords_redacted() {
        let c = DatabaseConfig::resolve(Some("postgres://bob:secret@127.0.0.1:5432/test"), Path::new("d")).unwrap();
        assert_eq!(c.backend, Backend::Postgres);
        assert_eq!(c.display_url(), "postgres://bob:***@127.0.0.1:5432/test");
    }

    #[test]
    fn malformed_urls_give_one_clear_reason() {
        for (url, needle) in [
            ("mysql://x/y", "unsupported scheme \"mysql\""),
            ("nonsense", "no scheme"),
            ("postgres:", "expected postgres://"),
            ("sqlite://", "names no file"),
        ] {
            let err = DatabaseConfig::resolve(Some(url), Path::new("d")).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
