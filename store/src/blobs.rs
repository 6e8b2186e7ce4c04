//! The blob store: large payloads kept outside the database (token-trace packs, response packs,
//! intervention traces, kept uploads), over the `object_store` crate, so that every replica and
//! worker of a deployment reads and writes the same blobs.
//!
//! Where: a URL (`--blob-url`, `CAPLENS_BLOB_URL`, or the one `caplens blobs migrate` recorded
//! in the database): `file:///path` (the default, `<data-dir>/blobs`), `s3://bucket/prefix`
//! (AWS S3 and S3-compatible stores: MinIO, Ceph, R2), `gs://bucket/prefix`,
//! `az://container/prefix`, and `memory://` for tests. Credentials come from each cloud's
//! standard environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), read by `object_store`;
//! they are never part of the URL and never logged.
//!
//! Keys are relative paths of `[a-z0-9._-]` segments, e.g. `traces/imp_ab12/run-7.pack`. A pack
//! is written with a multipart upload (parts go up while the import goes on) and becomes visible
//! only when complete; it is read by byte range, one ranged GET per rollout, never whole. The
//! database commit is the point of truth: a committed row never points at a blob that was not
//! completed first, and blobs that no commit came to reference are removed by the sweeper
//! (`storage::sweep`).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::StoreError;

/// Part size of multipart uploads: above S3's 5 MiB minimum, small enough that a pack in
/// flight holds little memory.
const PART_BYTES: usize = 8 << 20;
/// Parts of one upload in flight at once; a writer waits (back-pressure) beyond that.
const PARTS_IN_FLIGHT: usize = 2;

/// What kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Local,
    S3,
    Gcs,
    Azure,
    Memory,
}

/// One blob as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: i64,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    kind: BlobKind,
    /// The URL without anything secret (it never holds credentials), for logs and `/readyz`.
    url: String,
    /// The local root, for `Local`: folders are removed whole (with a killed upload's staging
    /// files, which listings do not show).
    root: Option<PathBuf>,
    /// The store blobs were migrated from (`caplens blobs migrate`): read when a blob is not
    /// (yet) in this one, so reads never fail during a migration.
    fallback: Option<Arc<BlobStore>>,
}

impl BlobStore {
    /// The local-filesystem store rooted at `root` (created when missing).
    pub fn local(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root: PathBuf = root.into();
        let io = |source| StoreError::Blob {
            path: root.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&root).map_err(io)?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?
            .with_automatic_cleanup(true);
        let root = std::fs::canonicalize(&root).map_err(io)?;
        Ok(BlobStore {
            inner: Arc::new(fs),
            kind: BlobKind::Local,
            url: format!("file://{}", root.display()),
            root: Some(root),
            fallback: None,
        })
    }

    /// The store a URL names; `None` is the local default under `data_dir`.
    pub fn open(url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        match url.map(str::trim).filter(|u| !u.is_empty()) {
            None => Self::local(data_dir.join("blobs")),
            Some(url) => Self::from_url(url),
        }
    }

    /// The store a URL names (see the module doc for the schemes).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let shown = redact_userinfo(url);
        let bad = |why: String| StoreError::Invalid(format!("blob store URL {shown:?}: {why}"));
        if !url.contains("://") {
            // A plain path is a local store.
            return Self::local(url);
        }
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL; set the cloud's environment variables (AWS_ACCESS_KEY_ID, ...)".into(),
            ));
        }
        let prefix = parsed.path().trim_matches('/').to_owned();
        let bucket = parsed.host_str().unwrap_or("").to_owned();
        let (kind, store): (BlobKind, Arc<dyn ObjectStore>) = match parsed.scheme() {
            "file" => return Self::local(parsed.path()),
            "memory" => (
                BlobKind::Memory,
                Arc::new(object_store::memory::InMemory::new()),
            ),
            "s3" | "s3a" => {
                install_tls_provider();
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&bucket)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (BlobKind::S3, Arc::new(s3))
            }
            "gs" => {
                install_tls_provider();
                let gcs = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (BlobKind::Gcs, Arc::new(gcs))
            }
            "az" | "azure" => {
                install_tls_provider();
                let az = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                (BlobKind::Azure, Arc::new(az))
            }
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?}; use file://, s3://, gs://, az:// or memory://"
                )))
            }
        };
        if bucket.is_empty() && kind != BlobKind::Memory {
            return Err(bad("no bucket (s3://BUCKET/PREFIX)".into()));
        }
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                store,
                prefix.as_str(),
            ))
        };
        let mut shown = format!("{}://{bucket}", parsed.scheme());
        if !prefix.is_empty() {
            shown.push('/');
            shown.push_str(&prefix);
        }
        let shown = shown;
        Ok(BlobStore {
            inner,
            kind,
            url: shown,
            root: None,
            fallback: None,
        })
    }

    /// This store, reading from `previous` whatever it does not hold.
    pub fn with_fallback(mut self, previous: BlobStore) -> Self {
        if previous.url != self.url {
            self.fallback = Some(Arc::new(previous));
        }
        self
    }

    /// Copies the blob `key` into `to` (streamed: a pack is never held in memory whole).
    pub async fn copy_to(&self, to: &BlobStore, key: &str) -> Result<u64, StoreError> {
        let path = self.path_of(key)?;
        let result = self
            .inner
            .get(&path)
            .await
            .map_err(|e| blob_error(key, e))?;
        let mut stream = result.into_stream();
        let mut pack = to.create_pack(key).await?;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    if let Err(e) = pack.append(&chunk).await {
                        pack.abort().await;
                        return Err(e);
                    }
                }
                Err(e) => {
                    pack.abort().await;
                    return Err(blob_error(key, e));
                }
            }
        }
        let len = pack.len();
        pack.finish().await?;
        Ok(len)
    }

    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    /// The folder of a local store (`None` for object storage).
    pub fn local_root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Where the store is (no secrets: credentials never live in the URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key of a run's token-trace pack: one per run, written while the import streams;
    /// each rollout row keeps its byte range.
    pub fn trace_pack_key(import_id: &str, run_id: i64) -> String {
        format!(
            "traces/{}/run-{run_id}.pack",
            import_id.to_ascii_lowercase()
        )
    }

    /// The pack of a run's response texts: beside its trace pack, under the import's prefix, so
    /// a failed or interrupted import's packs go with it.
    pub fn response_pack_key(import_id: &str, run_id: i64) -> String {
        format!(
            "traces/{}/run-{run_id}.responses",
            import_id.to_ascii_lowercase()
        )
    }

    /// The folder of an import's packs (removed when the import fails).
    pub fn import_traces_prefix(import_id: &str) -> String {
        format!("traces/{}", import_id.to_ascii_lowercase())
    }

    /// The folder of an import's kept upload (its files and `request.json`), for a retry from
    /// any replica.
    pub fn upload_prefix(import_id: &str) -> String {
        format!("uploads/{}", import_id.to_ascii_lowercase())
    }

    /// Starts a pack at `key`: appended to while an import streams, visible once finished.
    pub async fn create_pack(&self, key: &str) -> Result<PackWriter, StoreError> {
        let path = self.path_of(key)?;
        let upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| blob_error(key, e))?;
        Ok(PackWriter {
            key: key.to_owned(),
            store: self.inner.clone(),
            path,
            upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
            len: 0,
        })
    }

    /// Stores `bytes` under `key`, replacing any previous value atomically.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        self.inner
            .put(&path, PutPayload::from(Bytes::copy_from_slice(bytes)))
            .await
            .map_err(|e| blob_error(key, e))?;
        Ok(())
    }

    /// Uploads the file at `file` to `key` (multipart, without reading it into memory); returns
    /// its size.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64, StoreError> {
        use tokio::io::AsyncReadExt;
        let io = |source| StoreError::Blob {
            path: file.display().to_string(),
            source,
        };
        let mut input = tokio::fs::File::open(file).await.map_err(io)?;
        let mut pack = self.create_pack(key).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match input.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    pack.abort().await;
                    return Err(io(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = pack.append(&buf[..n]).await {
                pack.abort().await;
                return Err(e);
            }
        }
        let len = pack.len();
        pack.finish().await?;
        Ok(len)
    }

    /// Writes the blob `key` to the file `file`; `false` when there is no such blob.
    pub async fn get_to_file(&self, key: &str, file: &Path) -> Result<bool, StoreError> {
        use tokio::io::AsyncWriteExt;
        let path = self.path_of(key)?;
        let result = match self.inner.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return match &self.fallback {
                    Some(previous) => Box::pin(previous.get_to_file(key, file)).await,
                    None => Ok(false),
                }
            }
            Err(e) => return Err(blob_error(key, e)),
        };
        let io = |source| StoreError::Blob {
            path: file.display().to_string(),
            source,
        };
        let mut out = tokio::fs::File::create(file).await.map_err(io)?;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| blob_error(key, e))?;
            out.write_all(&chunk).await.map_err(io)?;
        }
        out.flush().await.map_err(io)?;
        Ok(true)
    }

    /// The bytes under `key`, or `None` when there are none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match self.inner.get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| blob_error(key, e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => match &self.fallback {
                Some(previous) => Box::pin(previous.get(key)).await,
                None => Ok(None),
            },
            Err(e) => Err(blob_error(key, e)),
        }
    }

    /// The size of the blob `key`, or `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let path = self.path_of(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => match &self.fallback {
                Some(previous) => Box::pin(previous.size(key)).await,
                None => Ok(None),
            },
            Err(e) => Err(blob_error(key, e)),
        }
    }

    /// Bytes `[offset, offset + len)` of the blob `key`, without reading the rest of it (one
    /// ranged GET). A blob shorter than the range is an error: the database and the blob store
    /// disagree.
    pub async fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .get_ranges(key, &[offset..offset + len])
            .await?
            .map(|mut parts| parts.remove(0).to_vec()))
    }

    /// Several ranges of one blob; nearby ones are fetched together (object_store coalesces
    /// them), so a page of rollouts of one run costs a few requests, not one per rollout.
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
    ) -> Result<Option<Vec<Bytes>>, StoreError> {
        let path = self.path_of(key)?;
        if ranges.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let parts = match self.inner.get_ranges(&path, ranges).await {
            Ok(parts) => parts,
            Err(object_store::Error::NotFound { .. }) => {
                return match &self.fallback {
                    Some(previous) => Box::pin(previous.get_ranges(key, ranges)).await,
                    None => Ok(None),
                }
            }
            Err(e) => return Err(blob_error(key, e)),
        };
        for (part, range) in parts.iter().zip(ranges) {
            if part.len() as u64 != range.end - range.start {
                return Err(StoreError::Blob {
                    path: key.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the blob is shorter than its index says (bytes {}..{} asked, {} read)",
                            range.start,
                            range.end,
                            part.len()
                        ),
                    ),
                });
            }
        }
        Ok(Some(parts))
    }

    /// Removes `key`; removing a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(blob_error(key, e)),
        }
    }

    /// Removes the folder `prefix` and everything under it (missing is fine).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let path = self.path_of(prefix)?;
        if let Some(root) = &self.root {
            // Local: the folder whole, with any staging file of an upload cut off by a crash.
            let dir = root.join(prefix);
            return match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StoreError::Blob {
                    path: dir.display().to_string(),
                    source,
                }),
            };
        }
        let locations = self.inner.list(Some(&path)).map_ok(|m| m.location).boxed();
        self.inner
            .delete_stream(locations)
            .try_for_each(|_| futures_util::future::ready(Ok(())))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(blob_error(prefix, e)),
            })
    }

    /// Every blob under `prefix` (all of them for `""`), in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, StoreError> {
        let path = if prefix.is_empty() {
            None
        } else {
            Some(self.path_of(prefix)?)
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| blob_error(prefix, e))?;
        Ok(metas
            .into_iter()
            .map(|m| BlobMeta {
                key: m.location.to_string(),
                size: m.size,
                modified: m.last_modified.timestamp(),
            })
            .collect())
    }

    /// The sub-folders directly under `prefix` (their full keys), e.g. the import folders under
    /// `traces`.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let path = self.path_of(prefix)?;
        let listed = match self.inner.list_with_delimiter(Some(&path)).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(blob_error(prefix, e)),
        };
        Ok(listed
            .common_prefixes
            .into_iter()
            .map(|p| p.to_string())
            .collect())
    }

    /// Writes, reads back and removes a small probe blob: the store takes writes (readiness).
    /// The key names this process, so replicas sharing a bucket never touch each other's.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let me: String = crate::instance_id()
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '.' | '-' | '_') => c,
                _ => '.',
            })
            .collect();
        let key = format!("readyz/probe-{me}");
        let bytes = b"caplens readiness probe";
        self.put(&key, bytes).await?;
        let read = self.get(&key).await?;
        self.delete(&key).await?;
        if read.as_deref() == Some(&bytes[..]) {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!(
                "the probe blob {key} did not read back"
            )))
        }
    }

    fn path_of(&self, key: &str) -> Result<ObjectPath, StoreError> {
        if !valid_key(key) {
            return Err(StoreError::Invalid(format!("invalid blob key {key:?}")));
        }
        Ok(ObjectPath::from(key))
    }
}

/// The URL with any `user:password@` replaced by `***@`: an error message never repeats a
/// secret someone put in a URL by mistake.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_owned(),
    }
}

/// A key is relative, of `[a-z0-9._-]` segments: it cannot escape the store's root or prefix.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

/// A pack being written: parts are uploaded while the caller appends; nothing is visible under
/// its key until [`PackWriter::finish`].
pub struct PackWriter {
    key: String,
    /// Where an empty pack is put plainly (some stores refuse a multipart upload of no parts).
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    upload: WriteMultipart,
    len: u64,
}

impl PackWriter {
    /// Appends one record; returns its (offset, length). Waits while too many parts are still
    /// uploading, so a slow store slows the import instead of filling memory.
    pub async fn append(&mut self, bytes: &[u8]) -> Result<(u64, u64), StoreError> {
        self.upload
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| blob_error(&self.key, e))?;
        self.upload.write(bytes);
        let offset = self.len;
        self.len += bytes.len() as u64;
        Ok((offset, bytes.len() as u64))
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Completes the upload (before the transaction that references it commits).
    pub async fn finish(self) -> Result<(), StoreError> {
        let key = self.key;
        if self.len == 0 {
            // Some stores refuse a multipart upload of no parts: an empty blob is put plainly.
            let _ = self.upload.abort().await;
            self.store
                .put(&self.path, PutPayload::default())
                .await
                .map_err(|e| blob_error(&key, e))?;
            return Ok(());
        }
        self.upload
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| blob_error(&key, e))
    }

    /// Abandons the upload (its parts are removed; best effort).
    pub async fn abort(self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(key = %self.key, error = %e, "could not abort a blob upload");
        }
    }
}

fn blob_error(key: &str, e: object_store::Error) -> StoreError {
    let kind = match &e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        _ => std::io::ErrorKind::Other,
    };
    StoreError::Blob {
        path: key.to_owned(),
        source: std::io::Error::new(kind, e.to_string()),
    }
}

/// The cloud clients talk TLS through rustls with ring (already built for other clients; the
/// default aws-lc-rs would add a C build). Installed once, before the first client is built.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_store_and_refuse_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let local = BlobStore::open(None, dir.path()).unwrap();
        assert_eq!(local.kind(), BlobKind::Local);
        assert!(local.url().starts_with("file://") && local.url().ends_with("/blobs"));
        assert_eq!(
            BlobStore::from_url("memory://").unwrap().kind(),
            BlobKind::Memory
        );
        let s3 = BlobStore::from_url("s3://bucket/some/prefix/").unwrap();
        assert_eq!(
            (s3.kind(), s3.url()),
            (BlobKind::S3, "s3://bucket/some/prefix")
        );
        for bad in ["s3://key:secret@bucket/x", "ftp://x/y", "s3:///prefix"] {
            let err = BlobStore::from_url(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
            assert!(err.contains("blob store URL"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let store = BlobStore::from_url("memory://").unwrap();
        for key in [
            "../x",
            "/etc/passwd",
            "a//b",
            "traces/../../x",
            "",
            "A.bin",
            "a/./b",
            "a#1",
        ] {
            assert!(store.put(key, b"x").await.is_err(), "{key:?} accepted");
        }
    }
}
