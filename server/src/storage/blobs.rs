//! The blob store: large per-rollout payloads (token traces) kept outside the database.
//!
//! Layout: `<data-dir>/blobs/<key>`, where a key is a relative path of `[a-z0-9._-]` segments,
//! e.g. `traces/run-12/rollout-3456.cltt`. One file per rollout means a page reads one trace
//! without touching any other. Writes are atomic (temporary file + rename), so a crash never
//! leaves a half-written trace under a real key. The encoding of a trace is
//! `caplens_analysis::trace` (columnar, versioned).

use std::path::{Path, PathBuf};

use crate::error::StoreError;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The key of a rollout's token trace.
    pub fn trace_key(run_id: i64, rollout_id: i64) -> String {
        format!("traces/run-{run_id}/rollout-{rollout_id}.cltt")
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let valid = !key.is_empty()
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !valid {
            return Err(StoreError::Invalid(format!("invalid blob key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    /// Stores `bytes` under `key`, replacing any previous value atomically.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let io = |source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let tmp = tmp_path(&path);
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(())
    }

    /// The bytes under `key`, or `None` when there are none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Blob {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Removes `key`; removing a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Blob {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let key = BlobStore::trace_key(3, 42);
        assert_eq!(store.get(&key).await.unwrap(), None);
        store.put(&key, b"abc").await.unwrap();
        store.put(&key, b"second").await.unwrap();
        assert_eq!(
            store.get(&key).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        for key in [
            "../x",
            "/etc/passwd",
            "a//b",
            "traces/../../x",
            "",
            "A.bin",
            "a/./b",
        ] {
            assert!(store.put(key, b"x").await.is_err(), "{key:?} accepted");
        }
    }
}
