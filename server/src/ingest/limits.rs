//! What caplens reads of an upload, at most: every decompressing or parsing reader of `ingest`
//! (and of dataset uploads) stops at one of these limits with an error naming the file, the line
//! or member, and the limit (issue 25).
//!
//! Uploads are untrusted, and small files can ask for a lot: a few kilobytes of zstd inflate to
//! gigabytes, two bytes of JSON (`0,`) become a 32-byte `serde_json::Value`, and a parquet page
//! header declares how much the reader allocates for it. So each limit bounds what one upload
//! makes the server hold at once, and [`MAX_INFLATION_RATIO`] how long it can keep it busy. The
//! limits are far above what the tools write (tests/fixtures/real holds their logs); the
//! hostile-input test (server/tests/hostile_inputs.rs) measures the allocation of bombs against
//! them.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Decompressed bytes that format detection reads ([`super::detect`], [`super::read_head`]):
/// the sniff budget. Zip and parquet files are sniffed as stored, so detection inflates nothing
/// else whatever the file.
pub const SNIFF_BYTES: usize = 256 * 1024;

/// The longest line the JSON Lines importers hold ([`super::for_each_line`]): far above real
/// records (a 32k-token response with 20 top logprobs per token is about 35 MB), and a bound on
/// what a compressed upload can make the server allocate. A longer line is rejected and skipped
/// without being held.
pub const MAX_LINE_BYTES: usize = 256 << 20;

/// An Inspect log's header, decompressed: `header.json` (or `_journal/start.json`) of a `.eval`,
/// and in a `.json` log each top-level field caplens keeps (`eval`, `plan`, `status`) and each
/// top-level key. Inspect writes a few kilobytes to a few megabytes (the plan, the task's
/// arguments, the package versions).
pub const MAX_INSPECT_HEADER_BYTES: u64 = 64 << 20;

/// One Inspect sample, decompressed: a `samples/*.json` member of a `.eval`, or one element of a
/// `.json` log's `samples`, messages and events included (the events, unparsed, are most of it).
/// A longer member is rejected like a long line; a longer element stops a `.json` read.
pub const MAX_INSPECT_SAMPLE_BYTES: u64 = 128 << 20;

/// What the parser keeps of one record while it reads it: the fields caplens uses of an Inspect
/// sample (`input`, `target`, `output`'s first choice and its token data, `scores`, `error`,
/// `attachments`), or the named fields of a dataset line. Counted as the heap they take
/// ([`KeptBudget`]: text bytes plus a fixed cost per JSON value or token), not as their text:
/// JSON nesting costs up to 16 times its text as a `serde_json::Value` tree.
pub const MAX_KEPT_BYTES: u64 = 128 << 20;

/// Compressed input (gzip and zstd streams, the members of an archive together, the pages of a
/// parquet file together) may decompress to at most this many times its compressed size once
/// past [`INFLATION_ALLOWANCE`]. Real logs compress 5 to 50 times, and deflate (gzip, zip)
/// cannot exceed 1032:1, so this never refuses a gzip upload; zstd can do 32,000:1, so a 20 MB
/// upload could otherwise inflate for hours.
pub const MAX_INFLATION_RATIO: u64 = 2048;

/// Decompressed bytes allowed whatever the ratio (small, highly repetitive files are legitimate).
pub const INFLATION_ALLOWANCE: u64 = 1 << 30;

/// The largest zstd window caplens decodes, as a power of two: 2^27 = 128 MiB, zstd's own default
/// limit and what `zstd --long` writes. The decoder allocates the window a frame declares, so
/// this bounds the decoder's own memory (outside Rust's allocator).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The largest uncompressed size a parquet page may declare. The parquet crate allocates a page's
/// declared size before decompressing it, and sizes a dictionary by its declared count of values;
/// pyarrow writes pages of 1 MiB (dictionaries up to 1 MiB) by default.
pub const MAX_PARQUET_PAGE_BYTES: u64 = 64 << 20;

/// The largest footer (the file's thrift metadata) of a parquet file. The crate decodes it whole
/// on opening, sizing each list by its declared length: about 100 bytes of memory per byte of
/// footer at worst. Real footers take a few hundred bytes per column chunk.
pub const MAX_PARQUET_FOOTER_BYTES: u64 = 2 << 20;

/// Rows a parquet file may declare (lighteval writes one per document; datasets are problems).
pub const MAX_PARQUET_ROWS: u64 = 1 << 24;

/// What one row of one parquet column may make the row reader materialise, estimated before it
/// does from the pages' declared values ([`super::parquet_rows`]): a list repeating a long
/// dictionary entry costs the entry's length per element.
pub const MAX_PARQUET_ROW_BYTES: u64 = 128 << 20;

/// The text all problems of a dataset upload keep together (the largest JSON Lines upload).
pub const MAX_DATASET_TEXT_BYTES: u64 = 256 << 20;

/// `n` bytes in MiB, for messages.
pub fn mib(n: u64) -> u64 {
    n >> 20
}

/// A limit a reader reached: carried as an `io::Error` through decoders and serde_json, and
/// recognised by the callers ([`LimitError::of`], [`LimitError::in_json`]), which name what was
/// being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    /// The input went on past `limit` bytes.
    TooLong { limit: u64 },
    /// The input decompressed to more than [`MAX_INFLATION_RATIO`] times its compressed size.
    Inflation { inflated: u64, compressed: u64 },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::TooLong { limit } => write!(f, "longer than {} MiB", mib(*limit)),
            LimitError::Inflation {
                inflated,
                compressed,
            } => write!(
                f,
                "decompresses to more than {MAX_INFLATION_RATIO} times its size ({} MiB from {} KiB so far); refused as a decompression bomb",
                mib(*inflated),
                compressed >> 10
            ),
        }
    }
}

impl std::error::Error for LimitError {}

impl LimitError {
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// The limit behind an I/O error, if it is one.
    pub fn of(e: &io::Error) -> Option<&LimitError> {
        e.get_ref()?.downcast_ref::<LimitError>()
    }

    /// The limit behind a serde_json error (an I/O error of its reader), or the error back
    /// (an I/O error without its position in the text, which serde_json keeps only by value).
    pub fn in_json(e: serde_json::Error) -> Result<LimitError, serde_json::Error> {
        if !e.is_io() {
            return Err(e);
        }
        let io = io::Error::from(e);
        match LimitError::of(&io) {
            Some(limit) => Ok(limit.clone()),
            None => Err(serde_json::Error::io(io)),
        }
    }
}

/// A reader that passes on at most `limit` bytes of `inner` and fails with
/// [`LimitError::TooLong`] when there are more.
pub struct Limited<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Limited {
            inner,
            read: 0,
            limit,
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // One byte past the limit is asked for, to tell "exactly the limit" from "longer".
        let room = (self.limit.saturating_sub(self.read) + 1).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(LimitError::TooLong { limit: self.limit }.into_io());
        }
        Ok(n)
    }
}

/// The bytes a reader has passed on, shared with whoever watches it.
#[derive(Debug, Clone, Default)]
pub struct Tally(Arc<AtomicU64>);

impl Tally {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts the bytes read from `inner` (the compressed side of a decoder) into a [`Tally`].
pub struct Tallied<R> {
    pub inner: R,
    pub tally: Tally,
}

impl<R: Read> Read for Tallied<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tally.add(n as u64);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tallied<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.tally.add(amt as u64);
        self.inner.consume(amt)
    }
}

/// Whether `inflated` bytes out of `compressed` break [`MAX_INFLATION_RATIO`].
pub fn inflation_exceeded(inflated: u64, compressed: u64) -> bool {
    inflated > INFLATION_ALLOWANCE && inflated / MAX_INFLATION_RATIO > compressed
}

/// The decompressed side of a decoder whose compressed side is [`Tallied`]: fails with
/// [`LimitError::Inflation`] once the stream breaks [`MAX_INFLATION_RATIO`].
pub struct InflationGuard<R> {
    inner: R,
    compressed: Tally,
    inflated: u64,
}

impl<R> InflationGuard<R> {
    pub fn new(inner: R, compressed: Tally) -> Self {
        InflationGuard {
            inner,
            compressed,
            inflated: 0,
        }
    }
}

impl<R: Read> Read for InflationGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        if inflation_exceeded(self.inflated, self.compressed.get()) {
            return Err(LimitError::Inflation {
                inflated: self.inflated,
                compressed: self.compressed.get(),
            }
            .into_io());
        }
        Ok(n)
    }
}

/// What a parser keeps of one record, charged against a limit ([`MAX_KEPT_BYTES`]) before each
/// value is built. Once the limit is reached nothing more is kept: the rest of the record is
/// skipped unparsed (its values read as `null`), and [`KeptBudget::exceeded`] tells the caller
/// to reject the record, so that a parse need not fail midway (and a stream can go on with the
/// next record).
#[derive(Debug)]
pub struct KeptBudget {
    left: Cell<u64>,
    limit: u64,
    exceeded: Cell<bool>,
}

/// Heap a kept JSON value takes beside its text: the 32-byte `Value` in a `Vec` that grows by
/// doubling, or a map entry; also what a kept token or top logprob takes beside its text.
pub const VALUE_COST: u64 = 64;

impl KeptBudget {
    pub fn new(limit: u64) -> Self {
        KeptBudget {
            left: Cell::new(limit),
            limit,
            exceeded: Cell::new(false),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the record wanted more than the limit (and so was not kept whole).
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// Takes `bytes` from the budget; `false` (and remembered) when they are not there.
    pub fn charge(&self, bytes: u64) -> bool {
        match self.left.get().checked_sub(bytes) {
            Some(left) if !self.exceeded.get() => {
                self.left.set(left);
                true
            }
            _ => {
                self.exceeded.set(true);
                false
            }
        }
    }
}

/// A `serde_json::Value` deserialized against a [`KeptBudget`]: each value is charged before it
/// is built, so JSON nesting cannot make a tree many times the budget.
#[derive(Clone, Copy)]
pub struct KeptValue<'b>(pub &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for KeptValue<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeptValue<'_> {
    fn scalar(self, value: Value, text: usize) -> Value {
        if self.0.charge(VALUE_COST + text as u64) {
            value
        } else {
            Value::Null
        }
    }
}

impl<'de> Visitor<'de> for KeptValue<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(self.scalar(Value::Bool(v), 0))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(self.scalar(Value::from(v), 0))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(self.scalar(Value::from(v), 0))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        let number = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        Ok(self.scalar(number, 0))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        if self.0.charge(VALUE_COST + v.len() as u64) {
            Ok(Value::String(v.to_owned()))
        } else {
            Ok(Value::Null)
        }
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        let len = v.len();
        Ok(self.scalar(Value::String(v), len))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(self.scalar(Value::Null, 0))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if !self.0.charge(VALUE_COST) {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            if !self.0.exceeded() {
                items.push(item);
            }
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if !self.0.charge(VALUE_COST) {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(Value::Null);
        }
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            let value = map.next_value_seed(self)?;
            if !self.0.exceeded() {
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
    }
}

/// A map key deserialized against a [`KeptBudget`] (charged for its map entry); empty once the
/// budget is spent.
#[derive(Clone, Copy)]
pub struct KeptKey<'b>(pub &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for KeptKey<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeptKey<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if self.0.charge(VALUE_COST + v.len() as u64) {
            Ok(v.to_owned())
        } else {
            Ok(String::new())
        }
    }
}
