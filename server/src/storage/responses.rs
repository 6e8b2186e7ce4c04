//! Response texts: in the rollout row (`rollouts.response`: the demo, rows written before
//! migration 0008) or a byte range of the run's response pack (`runs.response_pack`,
//! `rollouts.response_offset/length`: imports). Every read of a response goes through
//! [`ResponseReader`], so callers never see where the text lived.

use std::os::unix::fs::FileExt;

use super::blobs::BlobStore;
use crate::error::StoreError;

/// The columns a query selects (rollouts aliased `x`) for [`ResponseReader::text`], in this
/// order: `response, response_offset, response_length, response_pack`.
pub(crate) const RESPONSE_COLUMNS: &str = "x.response, x.response_offset, x.response_length,
    (SELECT rr.response_pack FROM runs rr WHERE rr.id = x.run_id) AS response_pack";

/// Where one response is.
#[derive(Debug, Default)]
pub(crate) struct ResponseAt {
    pub text: Option<String>,
    pub offset: Option<i64>,
    pub length: Option<i64>,
    pub pack: Option<String>,
}

impl ResponseAt {
    /// From a row that selected [`RESPONSE_COLUMNS`].
    pub(crate) fn of_row(row: &sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(ResponseAt {
            text: row.try_get("response")?,
            offset: row.try_get("response_offset")?,
            length: row.try_get("response_length")?,
            pack: row.try_get("response_pack")?,
        })
    }
}

/// Reads responses, keeping the last pack open: a run's rollouts read in id order read its pack
/// front to back.
pub(crate) struct ResponseReader<'a> {
    blobs: &'a BlobStore,
    open: Option<(String, std::fs::File)>,
}

impl<'a> ResponseReader<'a> {
    pub(crate) fn new(blobs: &'a BlobStore) -> Self {
        ResponseReader { blobs, open: None }
    }

    /// The response text. A pack that is missing or shorter than the row says is an error (the
    /// database and the blob store disagree), not an empty response.
    pub(crate) fn text(&mut self, at: ResponseAt) -> Result<Option<String>, StoreError> {
        let (Some(pack), Some(offset), Some(length)) = (at.pack, at.offset, at.length) else {
            return Ok(at.text);
        };
        if self.open.as_ref().is_none_or(|(key, _)| *key != pack) {
            let Some(file) = self.blobs.open(&pack)? else {
                return Err(missing(&pack, "the response pack is missing"));
            };
            self.open = Some((pack.clone(), file));
        }
        let (_, file) = self.open.as_ref().expect("opened above");
        let mut buf = vec![0u8; length.max(0) as usize];
        file.read_exact_at(&mut buf, offset.max(0) as u64)
            .map_err(|e| missing(&pack, &format!("reading {length} bytes at {offset}: {e}")))?;
        Ok(Some(match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }
}

fn missing(pack: &str, why: &str) -> StoreError {
    StoreError::Blob {
        path: pack.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why.to_owned()),
    }
}
