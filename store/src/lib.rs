//! caplens-store: one [`Store`] over SQLite (default) or PostgreSQL, plus the blob store for
//! token traces. The only crate that speaks SQL (the server crate does not depend on sqlx); its
//! errors ([`error`]) carry no HTTP status.
//!
//! Both databases are reached through sqlx's `Any` driver, so every query is written once in the
//! SQL both understand (`$1` placeholders, 64-bit integers, booleans as 0/1, RFC 3339 text
//! timestamps). Migrations are kept per backend under `migrations/sqlite` and
//! `migrations/postgres` and must describe the same schema.

pub mod access;
pub mod analysis;
pub mod blobs;
pub mod bulk;
pub mod catalog;
pub mod config;
pub mod error;
pub mod evals;
pub mod imports;
pub mod interventions;
pub mod limits;
pub mod responses;
pub mod review;
pub mod rft;
pub mod rollouts;
pub mod search;
pub mod sweep;
pub mod token_stats;
pub mod tokens;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
    AnyPool, Executor,
};

use crate::{
    config::{Backend, DatabaseConfig},
    error::{OpenError, StoreError},
};
pub use blobs::BlobStore;

/// The migrations of a backend. Migrations applied by a newer version and unknown to this one
/// are allowed: during a rolling upgrade a process of the previous version may restart against
/// the migrated schema (migrations only add; docs/deploy.md, "Upgrades").
fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

/// The database and the blob store. Cheap to clone (a pool handle and a path).
#[derive(Clone)]
pub struct Store {
    /// Private: outside this crate nothing reaches the database but through the store's API.
    pool: AnyPool,
    pub backend: Backend,
    pub blobs: BlobStore,
    /// The database's own driver, for bulk writes (`bulk/`): COPY on PostgreSQL.
    native: bulk::NativePool,
    /// The SQLite file, if the database is one (its migrations are locked beside it).
    sqlite_file: Option<std::path::PathBuf>,
}

impl Store {
    /// The raw pool, for tests that arrange or inspect rows with SQL of their own.
    #[cfg(feature = "test-support")]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Opens the database (creating the SQLite file and the data directory if needed). Every
    /// failure is a [`OpenError`] that says what is wrong and what to do.
    pub async fn open(db: &DatabaseConfig, data_dir: &Path) -> Result<Store, OpenError> {
        sqlx::any::install_default_drivers();
        ensure_writable_dir(data_dir)?;
        let sqlite_file = match db.backend {
            Backend::Sqlite => sqlite_file(&db.url),
            Backend::Postgres => None,
        };
        if let Some(parent) = sqlite_file
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            ensure_writable_dir(parent)?;
        }
        let options =
            AnyConnectOptions::from_str(&db.url).map_err(|e| OpenError::BadDatabaseUrl {
                url: db.display_url(),
                reason: first_line(&e.to_string()),
            })?;
        let backend = db.backend;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed during an import; foreign keys are off by default
                        // in SQLite; busy_timeout turns writer contention into waiting, not errors;
                        // a 32 MB page cache (default 2 MB) keeps an import's index pages in memory
                        // instead of spilling them to the WAL again and again.
                        conn.execute(
                            "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                             PRAGMA cache_size = -32768;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| classify_connect_error(db, data_dir, e))?;
        let blobs = BlobStore::local(data_dir.join("blobs")).map_err(|e| {
            OpenError::DataDirNotWritable {
                path: data_dir.join("blobs").display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let native = bulk::NativePool::lazy(db).map_err(|e| OpenError::BadDatabaseUrl {
            url: db.display_url(),
            reason: first_line(&e.to_string()),
        })?;
        Ok(Store {
            pool,
            backend,
            blobs,
            native,
            sqlite_file,
        })
    }

    /// The same database with another blob store (`--blob-url`, or the one recorded by
    /// `caplens blobs migrate`).
    pub fn with_blobs(mut self, blobs: BlobStore) -> Store {
        self.blobs = blobs;
        self
    }

    /// Applies pending migrations of this backend. SQLite's run on one connection with foreign
    /// keys off, as SQLite asks for schema changes that rebuild a table (0010: dropping the old
    /// table must not cascade), and every key is checked once they are applied.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let migrator = migrator(self.backend);
        let failed = |e: &dyn std::fmt::Display| OpenError::Migration(first_line(&e.to_string()));
        // sqlx locks PostgreSQL migrations (an advisory lock) but not SQLite's: processes
        // starting together on one SQLite file (a server and a worker) lock a file beside it.
        if self.backend == Backend::Postgres {
            return migrator.run(&self.pool).await.map_err(|e| failed(&e));
        }
        let _lock = match &self.sqlite_file {
            Some(file) => Some(lock_beside(file).await?),
            None => None,
        };
        let mut conn = self.pool.acquire().await.map_err(|e| failed(&e))?;
        conn.execute("PRAGMA foreign_keys = OFF")
            .await
            .map_err(|e| failed(&e))?;
        let applied = migrator
            .run_direct(&mut *conn)
            .await
            .map_err(|e| failed(&e));
        let violations: Result<Vec<(String, Option<i64>)>, _> =
            sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
                .fetch_all(&mut *conn)
                .await;
        conn.execute("PRAGMA foreign_keys = ON")
            .await
            .map_err(|e| failed(&e))?;
        applied?;
        match violations {
            Ok(v) if v.is_empty() => Ok(()),
            Ok(v) => Err(OpenError::Migration(format!(
                "{} rows break a foreign key after migrating (first: table {} row {}); restore the backup taken before the upgrade",
                v.len(),
                v[0].0,
                v[0].1.unwrap_or(-1)
            ))),
            Err(e) => Err(failed(&e)),
        }
    }

    /// A transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY_SNAPSHOT, which no busy timeout waits out, whenever another connection
    /// commits in between (a token's last-use update during an upload did).
    pub async fn begin_write(&self) -> Result<catalog::Tx<'static>, crate::error::StoreError> {
        match self.backend {
            Backend::Sqlite => db(self.pool.begin_with("BEGIN IMMEDIATE").await),
            Backend::Postgres => db(self.pool.begin().await),
        }
    }

    /// Answers when the database does (health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        db(sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await)?;
        Ok(())
    }

    pub async fn close(&self) {
        self.native.close().await;
        self.pool.close().await;
    }
}

/// This process's identity among the replicas and workers of a deployment:
/// `pid-<pid>-<start>-<random>@<host>`. Import leases name it; a process on the same host can
/// tell from it whether the owner is still running ([`instance_is_dead`]).
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let pid = std::process::id();
        let start = process_start(pid).unwrap_or(0);
        let random = &uuid::Uuid::new_v4().simple().to_string()[..8];
        format!("pid-{pid}-{start}-{random}@{}", host_name())
    })
}

/// Whether the process an [`instance_id`] names is known to be gone: it ran on this host and
/// no process with its pid and start time runs now. A process on another host is never known
/// dead from here (its lease tells).
pub fn instance_is_dead(id: &str) -> bool {
    let Some((local, host)) = id.rsplit_once('@') else {
        return false;
    };
    if host != host_name() {
        return false;
    }
    let mut parts = local.split('-');
    let (Some("pid"), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    match process_start(pid) {
        None => true,
        Some(now) => start != 0 && now != start,
    }
}

/// The host as far as pids go: its name and this process's pid namespace, so that two
/// containers sharing a host name never judge each other's pids (each sees only its own).
fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        // "pid:[4026531836]" -> 4026531836
        let namespace: String = std::fs::read_link("/proc/self/ns/pid")
            .map(|l| {
                l.to_string_lossy()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect()
            })
            .unwrap_or_default();
        format!("{name}.ns{namespace}")
    })
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22): with the pid,
/// it tells a process from a later one that reused the pid. `None` when no such process runs.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Lower-case hex of bytes (token and secret hashes, content hashes).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current time as RFC 3339 UTC text with seconds, the timestamp format of the schema.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch of a `YYYY-MM-DDTHH:MM:SSZ` timestamp as
/// [`rfc3339_from_unix`] writes it (days-from-civil, the inverse of its algorithm); `None` for
/// any other shape.
pub fn unix_from_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The file of a SQLite URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(Path::new(path).to_path_buf())
}

/// An exclusive lock on `<database file>.migrate-lock`, held until the returned file is dropped
/// (the operating system also drops it when the process dies).
async fn lock_beside(db_file: &Path) -> Result<std::fs::File, OpenError> {
    let mut name = db_file.as_os_str().to_owned();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| OpenError::Migration(format!("locking {shown}: {e}")))?
    .map_err(|e| OpenError::Migration(format!("cannot lock {shown}: {e}")))
}

fn ensure_writable_dir(dir: &Path) -> Result<(), OpenError> {
    let fail = |reason: String| OpenError::DataDirNotWritable {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let probe = dir.join(format!(".caplens-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn classify_connect_error(db: &DatabaseConfig, data_dir: &Path, e: sqlx::Error) -> OpenError {
    let reason = first_line(&e.to_string());
    match (&e, db.backend) {
        (sqlx::Error::Configuration(_), _) => OpenError::BadDatabaseUrl {
            url: db.display_url(),
            reason,
        },
        (_, Backend::Sqlite)
            if reason.contains("readonly") || reason.contains("unable to open") =>
        {
            OpenError::DataDirNotWritable {
                path: data_dir.display().to_string(),
                reason,
            }
        }
        _ => OpenError::DatabaseUnreachable {
            url: db.display_url(),
            reason,
        },
    }
}

/// Maps a [`StoreError`]-producing sqlx call; shorthand used across the storage modules.
pub(crate) fn db<T>(r: Result<T, sqlx::Error>) -> Result<T, StoreError> {
    r.map_err(StoreError::Database)
}

#[cfg(test)]
mod tests {

    #[test]
    fn rfc3339_round_trips_through_unix_seconds() {
        for secs in [0u64, 59, 86_399, 951_782_400, 1_798_761_600, 4_107_542_399] {
            let text = rfc3339_from_unix(secs);
            assert_eq!(unix_from_rfc3339(&text), Some(secs), "{text}");
        }
        assert_eq!(
            unix_from_rfc3339("2026-11-27T00:00:00Z"),
            Some(1_795_737_600)
        );
        assert_eq!(unix_from_rfc3339("2026-11-27 00:00:00"), None);
        assert_eq!(unix_from_rfc3339("2026-1x-27T00:00:00Z"), None);
    }

    use super::*;

    #[test]
    fn instances_on_this_host_are_known_alive_or_dead() {
        let me = instance_id();
        assert!(!instance_is_dead(me), "{me}");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = format!("pid-{pid}-12345-abcd@{}", host_name());
        assert!(instance_is_dead(&gone), "{gone}");
        assert!(!instance_is_dead(&format!(
            "pid-{pid}-12345-abcd@another-host"
        )));
        assert!(!instance_is_dead("not an instance id"));
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_795_710_667), "2026-11-26T16:31:07Z");
    }

    #[test]
    fn sqlite_file_is_found_for_relative_and_absolute_paths() {
        assert_eq!(
            sqlite_file("sqlite://data/caplens.db?mode=rwc"),
            Some("data/caplens.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:///tmp/x/c.db"),
            Some("/tmp/x/c.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
