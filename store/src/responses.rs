//! Response texts: in the rollout row (`rollouts.response`: the demo, rows written before
//! migration 0008) or a byte range of the run's response pack (`runs.response_pack`,
//! `rollouts.response_offset/length`: imports). Every read of a response goes through
//! [`ResponseReader`], so callers never see where the text lived.

use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;

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

/// Reads responses from their packs: one ranged GET per response ([`ResponseReader::text`]),
/// a batch of one page per pack ([`ResponseReader::texts`]), or a run read front to back in
/// large windows ([`ResponseReader::sequential`]).
pub(crate) struct ResponseReader<'a> {
    blobs: &'a BlobStore,
    /// Bytes fetched ahead on a miss (0: exactly the response).
    window_bytes: u64,
    /// The last window fetched: (pack, offset of its first byte, bytes).
    window: Option<(String, u64, Bytes)>,
    /// Pack sizes, so that a window never asks past a pack's end.
    sizes: HashMap<String, u64>,
}

/// Window of a sequential reader: a run's rollouts read in id order read their pack front to
/// back, a few requests per run instead of one per rollout.
const SEQUENTIAL_WINDOW: u64 = 4 << 20;

impl<'a> ResponseReader<'a> {
    pub(crate) fn new(blobs: &'a BlobStore) -> Self {
        ResponseReader {
            blobs,
            window_bytes: 0,
            window: None,
            sizes: HashMap::new(),
        }
    }

    /// A reader for responses read in pack order (a run's rollouts by id).
    pub(crate) fn sequential(blobs: &'a BlobStore) -> Self {
        ResponseReader {
            window_bytes: SEQUENTIAL_WINDOW,
            ..Self::new(blobs)
        }
    }

    /// The response text. A pack that is missing or shorter than the row says is an error (the
    /// database and the blob store disagree), not an empty response.
    pub(crate) async fn text(&mut self, at: ResponseAt) -> Result<Option<String>, StoreError> {
        let (Some(pack), Some(offset), Some(length)) = (at.pack, at.offset, at.length) else {
            return Ok(at.text);
        };
        let (offset, length) = (offset.max(0) as u64, length.max(0) as u64);
        if let Some((key, start, bytes)) = &self.window {
            if *key == pack && offset >= *start && offset + length <= start + bytes.len() as u64 {
                let from = (offset - start) as usize;
                return Ok(Some(lossy(&bytes[from..from + length as usize])));
            }
        }
        let mut end = offset + length;
        if self.window_bytes > 0 {
            let size = match self.sizes.get(&pack) {
                Some(size) => *size,
                None => {
                    let Some(size) = self.blobs.size(&pack).await? else {
                        return Err(missing(&pack, "the response pack is missing"));
                    };
                    self.sizes.insert(pack.clone(), size);
                    size
                }
            };
            end = end.max((offset + self.window_bytes).min(size));
        }
        let Some(mut parts) = self.blobs.get_ranges(&pack, &[offset..end]).await? else {
            return Err(missing(&pack, "the response pack is missing"));
        };
        let bytes = parts.remove(0);
        let text = lossy(&bytes[..length as usize]);
        self.window = Some((pack, offset, bytes));
        Ok(Some(text))
    }

    /// Many responses (a page, an export chunk), in the order given: the ranges of each pack
    /// are fetched in one call (nearby ones coalesced), not one request per response.
    pub(crate) async fn texts(
        &mut self,
        ats: Vec<ResponseAt>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut out: Vec<Option<String>> = Vec::with_capacity(ats.len());
        // pack -> (index into out, range)
        let mut wanted: HashMap<String, Vec<(usize, Range<u64>)>> = HashMap::new();
        for (i, at) in ats.into_iter().enumerate() {
            match (at.pack, at.offset, at.length) {
                (Some(pack), Some(offset), Some(length)) => {
                    let offset = offset.max(0) as u64;
                    wanted
                        .entry(pack)
                        .or_default()
                        .push((i, offset..offset + length.max(0) as u64));
                    out.push(None);
                }
                _ => out.push(at.text),
            }
        }
        for (pack, items) in wanted {
            let ranges: Vec<Range<u64>> = items.iter().map(|(_, r)| r.clone()).collect();
            let Some(parts) = self.blobs.get_ranges(&pack, &ranges).await? else {
                return Err(missing(&pack, "the response pack is missing"));
            };
            for ((i, _), bytes) in items.into_iter().zip(parts) {
                out[i] = Some(lossy(&bytes));
            }
        }
        Ok(out)
    }
}

/// Response texts are stored as given; invalid UTF-8 is shown replaced, never refused.
fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn missing(pack: &str, why: &str) -> StoreError {
    StoreError::Blob {
        path: pack.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why.to_owned()),
    }
}
