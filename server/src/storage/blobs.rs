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
    /// The pack file holding the token traces of one run of one import: one file per run,
    /// appended while the import streams; each rollout row keeps its byte range.
    pub fn trace_pack_key(import_id: &str, run_id: i64) -> String {
        format!(
            "traces/{}/run-{run_id}.pack",
            import_id.to_ascii_lowercase()
        )
    }

    /// The folder of an import's packs (removed when the import fails).
    /// The pack of a run's response texts: beside its trace pack, under the import's prefix, so
    /// a failed or interrupted import's packs go with it.
    pub fn response_pack_key(import_id: &str, run_id: i64) -> String {
        format!(
            "traces/{}/run-{run_id}.responses",
            import_id.to_ascii_lowercase()
        )
    }

    /// Opens a blob for positioned reads (`None` when it does not exist).
    pub fn open(&self, key: &str) -> Result<Option<std::fs::File>, StoreError> {
        let path = self.path_of(key)?;
        match std::fs::File::open(&path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Blob {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn import_traces_prefix(import_id: &str) -> String {
        format!("traces/{}", import_id.to_ascii_lowercase())
    }

    /// Creates (or truncates) the blob `key` for appending.
    pub fn create_pack(&self, key: &str) -> Result<TracePack, StoreError> {
        let path = self.path_of(key)?;
        let io = |source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = std::fs::File::create(&path).map_err(io)?;
        Ok(TracePack {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            len: 0,
            path,
        })
    }

    /// Bytes `[offset, offset + len)` of the blob `key`, without reading the rest of it.
    pub async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let path = self.path_of(key)?;
        let io = |source| StoreError::Blob {
            path: path.display().to_string(),
            source,
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io)?;
        let mut buf = Vec::with_capacity(len.min(1 << 30) as usize);
        file.take(len).read_to_end(&mut buf).await.map_err(io)?;
        if (buf.len() as u64) < len {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "trace pack shorter than its index says",
            )));
        }
        Ok(Some(buf))
    }

    /// Removes the folder `prefix` and everything under it (missing is fine).
    pub fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let path = self.path_of(prefix)?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Blob {
                path: path.display().to_string(),
                source,
            }),
        }
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

    /// Writes, reads back and removes a small probe blob: the store takes writes (readiness).
    pub async fn probe(&self) -> Result<(), StoreError> {
        let key = format!("readyz/probe-{}", std::process::id());
        let bytes = b"caplens readiness probe";
        self.put(&key, bytes).await?;
        let read = self.get(&key).await?;
        self.delete(&key).await?;
        if read.as_deref() == Some(&bytes[..]) {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!("the probe blob {key} did not read back")))
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

/// An append-only pack of token traces being written by an import.
pub struct TracePack {
    out: std::io::BufWriter<std::fs::File>,
    len: u64,
    path: PathBuf,
}

impl TracePack {
    /// Appends one encoded trace; returns its (offset, length).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(u64, u64), StoreError> {
        use std::io::Write;
        self.out
            .write_all(bytes)
            .map_err(|source| StoreError::Blob {
                path: self.path.display().to_string(),
                source,
            })?;
        let offset = self.len;
        self.len += bytes.len() as u64;
        Ok((offset, bytes.len() as u64))
    }

    /// Flushes to disk (before the import's transaction commits).
    pub fn finish(mut self) -> Result<(), StoreError> {
        use std::io::Write;
        let path = self.path.display().to_string();
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_data())
            .map_err(|source| StoreError::Blob { path, source })
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
        let key = "traces/x/rollout-42.cltt";
        assert_eq!(store.get(key).await.unwrap(), None);
        store.put(key, b"abc").await.unwrap();
        store.put(key, b"second").await.unwrap();
        assert_eq!(
            store.get(key).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        store.delete(key).await.unwrap();
        store.delete(key).await.unwrap();
        assert_eq!(store.get(key).await.unwrap(), None);
    }

    #[tokio::test]
    async fn pack_ranges_read_back_alone_and_prefix_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let key = BlobStore::trace_pack_key("imp_AB12", 7);
        let mut pack = store.create_pack(&key).unwrap();
        let a = pack.append(b"first-trace").unwrap();
        let b = pack.append(b"second").unwrap();
        pack.finish().unwrap();
        assert_eq!(a, (0, 11));
        assert_eq!(
            store.get_range(&key, b.0, b.1).await.unwrap().as_deref(),
            Some(&b"second"[..])
        );
        assert!(
            store.get_range(&key, 10, 100).await.is_err(),
            "a range past the end is an error"
        );
        store
            .delete_prefix(&BlobStore::import_traces_prefix("imp_AB12"))
            .unwrap();
        assert_eq!(store.get_range(&key, 0, 1).await.unwrap(), None);
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
