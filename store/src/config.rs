//! Which database: a validated `DATABASE_URL` (or the default SQLite file in the data
//! directory), and the one way to show it with its password hidden.

use crate::error::OpenError;

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
    pub fn resolve(url: Option<&str>, data_dir: &std::path::Path) -> Result<Self, OpenError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            let path = data_dir.join("caplens.db");
            return Ok(Self {
                backend: Backend::Sqlite,
                url: format!("sqlite://{}?mode=rwc", path.display()),
            });
        };
        let bad = |reason: &str| OpenError::BadDatabaseUrl {
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
                Ok(Self {
                    backend: Backend::Sqlite,
                    url,
                })
            }
            "postgres" | "postgresql" => {
                let after = rest
                    .strip_prefix("//")
                    .ok_or_else(|| bad("expected postgres://host/..."))?;
                if after.is_empty() {
                    return Err(bad("it names no host"));
                }
                Ok(Self {
                    backend: Backend::Postgres,
                    url: url.to_string(),
                })
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

/// Hides passwords in a database URL, for messages and logs: the userinfo password
/// (`scheme://user:password@host/...`, split at the last `@` so a raw `@` in a password does not
/// leak part of it) and a `password=` query parameter.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => base.to_string(),
            },
            None => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
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
        let c = DatabaseConfig::resolve(
            Some("postgres://bob:secret@127.0.0.1:5432/test"),
            Path::new("d"),
        )
        .unwrap();
        assert_eq!(c.backend, Backend::Postgres);
        assert_eq!(c.display_url(), "postgres://bob:***@127.0.0.1:5432/test");
    }

    #[test]
    fn redaction_covers_query_passwords_and_at_signs_in_passwords() {
        assert_eq!(
            redact("postgres://u@h/db?password=secret&sslmode=off"),
            "postgres://u@h/db?password=***&sslmode=off"
        );
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("sqlite://data/c.db?mode=rwc"),
            "sqlite://data/c.db?mode=rwc"
        );
    }

    #[test]
    fn malformed_urls_give_one_clear_reason() {
        for (url, needle) in [
            ("mysql://x/y", "unsupported scheme \"mysql\""),
            ("nonsense", "no scheme"),
            ("postgres:", "expected postgres://"),
            ("sqlite://", "names no file"),
        ] {
            let err = DatabaseConfig::resolve(Some(url), Path::new("d"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }
}
