//! Parquet rows as JSON values: what the lighteval importer and dataset uploads share.
//!
//! Read with the `parquet` crate's record API (no arrow), row group by row group, so memory is
//! bounded by one row of the projected columns. The crate trusts what a file declares: it
//! allocates a page's declared uncompressed size before decompressing it, sizes a dictionary by
//! its declared count of values, and builds a row from as many values as its levels say, each
//! a copy of its dictionary entry. So before the crate reads anything caplens checks what the
//! file declares ([`check_footer`], the page headers of each column chunk it reads
//! ([`scan_pages`])) and, while the crate reads, what each page will make a row hold
//! ([`GuardedPages`]), against the limits of [`crate::ingest::limits`].

use std::io::Read;
use std::sync::{Arc, Mutex};

use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageMetadata, PageReader};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, RowGroupMetaData};
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use parquet::schema::types::{ColumnDescPtr, Type, TypePtr};
use serde_json::{Map, Value};

use crate::ingest::limits::{
    inflation_exceeded, mib, MAX_INFLATION_RATIO, MAX_PARQUET_FOOTER_BYTES, MAX_PARQUET_PAGE_BYTES,
    MAX_PARQUET_ROWS, MAX_PARQUET_ROW_BYTES, VALUE_COST,
};

/// Parquet files start (and end) with these four bytes.
pub const MAGIC: &[u8] = b"PAR1";

/// A parquet row as a JSON object: structs as objects, lists as arrays, maps as objects (keys
/// as text), binary as (lossy) UTF-8 text, NaN and infinities as null.
pub fn row_object(row: &Row) -> Map<String, Value> {
    row.get_column_iter()
        .map(|(name, field)| (name.clone(), field_value(field)))
        .collect()
}

/// One parquet value as JSON (see [`row_object`]).
pub fn field_value(field: &Field) -> Value {
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(i) => Value::from(*i),
        Field::Short(i) => Value::from(*i),
        Field::Int(i) | Field::Date(i) | Field::TimeMillis(i) => Value::from(*i),
        Field::Long(i)
        | Field::TimeMicros(i)
        | Field::TimestampMillis(i)
        | Field::TimestampMicros(i) => Value::from(*i),
        Field::UByte(i) => Value::from(*i),
        Field::UShort(i) => Value::from(*i),
        Field::UInt(i) => Value::from(*i),
        Field::ULong(i) => Value::from(*i),
        Field::Float16(f) => float(f32::from(*f) as f64),
        Field::Float(f) => float(*f as f64),
        Field::Double(f) => float(*f),
        Field::Decimal(_) => Value::String(field.to_string()),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        Field::Group(row) => Value::Object(row_object(row)),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_value).collect())
        }
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Field::Str(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, field_value(v))
                })
                .collect(),
        ),
    }
}

/// Opens a parquet file whose footer (its metadata, which the crate decodes whole when it opens
/// the file, sizing each list by its declared length) is at most [`MAX_PARQUET_FOOTER_BYTES`].
/// The error is the message, to follow the file's name.
pub fn open<C: ChunkReader + 'static>(source: C) -> Result<SerializedFileReader<C>, String> {
    let len = source.len();
    if let Some(tail) = len
        .checked_sub(8)
        .and_then(|at| source.get_bytes(at, 8).ok())
    {
        let footer = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
        if footer > MAX_PARQUET_FOOTER_BYTES && &tail[4..] == MAGIC {
            return Err(format!(
                "its footer (the file's metadata) is {} KiB; caplens reads parquet footers up to {} MiB",
                footer >> 10,
                mib(MAX_PARQUET_FOOTER_BYTES)
            ));
        }
    }
    SerializedFileReader::new(source).map_err(|e| format!("not a readable parquet file: {e}"))
}

/// What a row holds in memory, estimated as [`VALUE_COST`] per value plus its text.
fn row_bytes(row: &Row) -> u64 {
    fn field_bytes(field: &Field) -> u64 {
        VALUE_COST
            + match field {
                Field::Str(s) => s.len() as u64,
                Field::Bytes(b) => b.len() as u64,
                Field::Group(row) => row_bytes(row),
                Field::ListInternal(list) => list.elements().iter().map(field_bytes).sum(),
                Field::MapInternal(map) => map
                    .entries()
                    .iter()
                    .map(|(k, v)| field_bytes(k) + field_bytes(v))
                    .sum(),
                _ => 0,
            }
    }
    row.get_column_iter().map(|(_, f)| field_bytes(f)).sum()
}

/// The file's top-level columns in `wanted`, with only the named members of struct columns
/// (`None`: read every column, should the file's own types not make a valid projection).
pub fn projection(schema: &Type, wanted: &[(&str, Option<&[&str]>)]) -> Option<Type> {
    let mut fields: Vec<TypePtr> = Vec::new();
    for field in schema.get_fields() {
        let Some((_, members)) = wanted.iter().find(|(name, _)| *name == field.name()) else {
            continue;
        };
        match members {
            Some(members) if field.is_group() => {
                let children: Vec<TypePtr> = field
                    .get_fields()
                    .iter()
                    .filter(|c| members.contains(&c.name()))
                    .cloned()
                    .collect();
                if children.is_empty() {
                    fields.push(field.clone());
                    continue;
                }
                let info = field.get_basic_info();
                let mut builder = Type::group_type_builder(field.name())
                    .with_converted_type(info.converted_type())
                    .with_logical_type(info.logical_type_ref().cloned())
                    .with_fields(children);
                if info.has_repetition() {
                    builder = builder.with_repetition(info.repetition());
                }
                fields.push(Arc::new(builder.build().ok()?));
            }
            _ => fields.push(field.clone()),
        }
    }
    Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .ok()
}

/// Calls `each(row_number, row)` for every row of `reader` (1-based across the file), one row
/// group at a time, reading only the columns of `projection` (all when `None`). `source` is the
/// file `reader` reads (its page headers are read before the crate reads the pages).
/// `after_group` gets each row group's compressed size (for progress). Errors are (row number,
/// message).
///
/// The file is refused before anything is read when its footer declares more rows than
/// [`MAX_PARQUET_ROWS`] or column chunks outside the file, and a row group is refused before its
/// rows are read when a page declares more than [`MAX_PARQUET_PAGE_BYTES`] (or a dictionary more
/// values than fit in them). While rows are read, a row that would make the crate materialise
/// more than [`MAX_PARQUET_ROW_BYTES`] of one column is refused before it does
/// ([`GuardedPages`]), and so is a file whose pages would together materialise more than
/// [`MAX_INFLATION_RATIO`] times its size.
///
/// The parquet crate's row reader panics on some corrupt files (its documented `byte_range`
/// panic on a negative column offset or size, assertions on levels): the footer's column
/// ranges are checked first, and any other panic inside the crate becomes an error of the row
/// being read (found by the `lighteval` fuzz target, docs/fuzzing.md).
pub fn for_each_row<C: ChunkReader + 'static, E>(
    reader: &SerializedFileReader<C>,
    source: &C,
    projection: Option<&Type>,
    mut after_group: impl FnMut(u64),
    mut each: impl FnMut(u64, Map<String, Value>) -> Result<(), E>,
    decode_error: impl Fn(u64, String) -> E,
) -> Result<(), E> {
    let file_len = source.len();
    check_footer(reader, file_len).map_err(|m| decode_error(1, m))?;
    let guard = Arc::new(Mutex::new(Guard {
        file_len,
        ..Guard::default()
    }));
    let mut row_no = 0u64;
    for group in 0..reader.num_row_groups() {
        let cannot_read = |e: String| format!("cannot read row group {group}: {e}");
        let opened = match guarded(|| reader.get_row_group(group)) {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(decode_error(row_no + 1, cannot_read(e.to_string()))),
            Err(panic) => return Err(decode_error(row_no + 1, cannot_read(panic))),
        };
        let group_reader = GuardedRowGroup {
            inner: opened,
            source,
            group,
            first_row: row_no,
            guard: guard.clone(),
        };
        // A refusal of the guard is the error, whatever the crate made of it.
        let refusal = |fallback: String| -> String { take_refusal(&guard).unwrap_or(fallback) };
        let mut rows = match guarded(|| RowIter::from_row_group(projection.cloned(), &group_reader))
        {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                return Err(decode_error(
                    row_no + 1,
                    refusal(cannot_read(e.to_string())),
                ))
            }
            Err(panic) => return Err(decode_error(row_no + 1, refusal(cannot_read(panic)))),
        };
        loop {
            let row = match guarded(|| rows.next()) {
                Ok(None) => break,
                Ok(Some(row)) => row,
                Err(panic) => {
                    return Err(decode_error(
                        row_no + 1,
                        refusal(format!("cannot decode the row: {panic}")),
                    ))
                }
            };
            row_no += 1;
            let row = row.map_err(|e| {
                decode_error(row_no, refusal(format!("cannot decode the row: {e}")))
            })?;
            let bytes = row_bytes(&row);
            if bytes > MAX_PARQUET_ROW_BYTES {
                return Err(decode_error(
                    row_no,
                    format!(
                        "the row takes {} MiB in memory; caplens reads parquet rows up to {} MiB",
                        mib(bytes),
                        mib(MAX_PARQUET_ROW_BYTES)
                    ),
                ));
            }
            each(row_no, row_object(&row))?;
        }
        drop(rows);
        after_group(group_reader.metadata().compressed_size().max(0) as u64);
    }
    Ok(())
}

/// What the footer declares, checked before any page is read: the rows (at most
/// [`MAX_PARQUET_ROWS`]) and each column chunk's place (inside the file: the crate allocates a
/// chunk's declared length before reading it, and asserts on negative ones).
fn check_footer<C: ChunkReader + 'static>(
    reader: &SerializedFileReader<C>,
    file_len: u64,
) -> Result<(), String> {
    let mut rows = 0u64;
    for (group, meta) in reader.metadata().row_groups().iter().enumerate() {
        let declared = u64::try_from(meta.num_rows()).map_err(|_| {
            format!("corrupt parquet footer: row group {group} has a negative row count")
        })?;
        rows = rows.saturating_add(declared);
        if rows > MAX_PARQUET_ROWS {
            return Err(format!(
                "the file declares more than {MAX_PARQUET_ROWS} rows; caplens reads parquet files of up to that many"
            ));
        }
        for column in meta.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let size = column.compressed_size();
            let inside = start >= 0
                && size >= 0
                && (start as u64)
                    .checked_add(size as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(format!(
                    "corrupt parquet footer: column {} of row group {group} has a negative offset or size or lies past the end of the file",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// What the guard has seen of a file, shared by the readers of its row groups and pages.
#[derive(Debug, Default)]
struct Guard {
    file_len: u64,
    /// Uncompressed bytes the scanned page headers declare, together.
    declared: u64,
    /// What the pages read so far can make rows materialise, together (estimated).
    materialised: u64,
    /// Why the guard stopped the read: the error to report, whatever the crate made of it.
    refusal: Option<String>,
}

fn take_refusal(guard: &Mutex<Guard>) -> Option<String> {
    guard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .refusal
        .take()
}

/// Records a refusal and turns it into the crate's error type (to stop the crate's read).
fn refuse(guard: &Mutex<Guard>, message: String) -> ParquetError {
    let mut guard = guard.lock().unwrap_or_else(|e| e.into_inner());
    guard.refusal.get_or_insert(message.clone());
    ParquetError::General(message)
}

/// A row group whose column chunks are checked ([`scan_pages`]) before the crate reads them,
/// and whose pages are watched ([`GuardedPages`]) while it does.
struct GuardedRowGroup<'a, C> {
    inner: Box<dyn RowGroupReader + 'a>,
    source: &'a C,
    group: usize,
    /// Rows of the row groups before this one.
    first_row: u64,
    guard: Arc<Mutex<Guard>>,
}

impl<C: ChunkReader> RowGroupReader for GuardedRowGroup<'_, C> {
    fn metadata(&self) -> &RowGroupMetaData {
        self.inner.metadata()
    }

    fn num_columns(&self) -> usize {
        self.inner.num_columns()
    }

    fn get_column_page_reader(&self, i: usize) -> parquet::errors::Result<Box<dyn PageReader>> {
        let column = self.inner.metadata().column(i);
        let declared = {
            let guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            guard.declared
        };
        match scan_pages(self.source, column, self.group, declared) {
            Ok(total) => {
                let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
                guard.declared = total;
                if inflation_exceeded(total, guard.file_len) {
                    let message = format!(
                        "the file's pages declare more than {MAX_INFLATION_RATIO} times its size uncompressed ({} MiB); refused as a decompression bomb",
                        mib(total)
                    );
                    drop(guard);
                    return Err(refuse(&self.guard, message));
                }
            }
            Err(message) => return Err(refuse(&self.guard, message)),
        }
        let pages = self.inner.get_column_page_reader(i)?;
        Ok(Box::new(GuardedPages::new(
            pages,
            column.column_descr_ptr(),
            self.first_row,
            self.guard.clone(),
        )))
    }

    fn get_column_bloom_filter(&self, i: usize) -> Option<&parquet::bloom_filter::Sbbf> {
        self.inner.get_column_bloom_filter(i)
    }

    fn get_row_iter(&self, projection: Option<Type>) -> parquet::errors::Result<RowIter<'_>> {
        RowIter::from_row_group(projection, self)
    }
}

/// What a dictionary entry costs in the crate's dictionary (a `ByteArray` is 32 bytes) at
/// least, for the limit on a dictionary page's declared count of values.
const DICTIONARY_ENTRY_BYTES: u64 = 32;

/// Reads the page headers of `column` (thrift's compact protocol, [`page_header`]) and checks
/// what each declares: at most [`MAX_PARQUET_PAGE_BYTES`] uncompressed, and for a dictionary at
/// most as many values as fit in that many bytes of the crate's dictionary. Returns `declared`
/// plus the uncompressed bytes of these pages.
fn scan_pages<C: ChunkReader>(
    source: &C,
    column: &ColumnChunkMetaData,
    group: usize,
    mut declared: u64,
) -> Result<u64, String> {
    let path = column.column_path();
    let start = column
        .dictionary_page_offset()
        .unwrap_or(column.data_page_offset()) as u64;
    let end = start + column.compressed_size() as u64;
    let mut offset = start;
    let mut page = 0usize;
    while offset < end {
        let corrupt = |why: String| {
            format!("cannot read page {page} of column {path} in row group {group} ({why}); the file is corrupt")
        };
        let read = source
            .get_read(offset)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut counted = Counted {
            inner: read.take(end - offset),
            read: 0,
        };
        let header = page_header(&mut counted).map_err(|e| corrupt(e.to_string()))?;
        let (Ok(compressed), Ok(uncompressed)) = (
            u64::try_from(header.compressed),
            u64::try_from(header.uncompressed),
        ) else {
            return Err(corrupt("a negative page size".into()));
        };
        if uncompressed > MAX_PARQUET_PAGE_BYTES {
            return Err(format!(
                "page {page} of column {path} in row group {group} declares {} MiB uncompressed; caplens reads parquet pages up to {} MiB",
                mib(uncompressed),
                mib(MAX_PARQUET_PAGE_BYTES)
            ));
        }
        if let Some(values) = header.dictionary_values {
            let values = u64::try_from(values)
                .map_err(|_| corrupt("a negative count of dictionary values".into()))?;
            if values.saturating_mul(DICTIONARY_ENTRY_BYTES) > MAX_PARQUET_PAGE_BYTES {
                return Err(format!(
                    "the dictionary of column {path} in row group {group} declares {values} values; caplens reads dictionaries of up to {} values",
                    MAX_PARQUET_PAGE_BYTES / DICTIONARY_ENTRY_BYTES
                ));
            }
        }
        declared = declared.saturating_add(uncompressed);
        offset = offset
            .saturating_add(counted.read)
            .saturating_add(compressed);
        page += 1;
    }
    Ok(declared)
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// What caplens reads of a page header (parquet's thrift `PageHeader`).
#[derive(Debug, Default, PartialEq)]
struct PageHeader {
    /// 1: the page's uncompressed size (`uncompressed_page_size`, field 2).
    uncompressed: i32,
    /// The page's compressed size (`compressed_page_size`, field 3).
    compressed: i32,
    /// `dictionary_page_header.num_values` (field 7.1), for a dictionary page.
    dictionary_values: Option<i32>,
}

// Thrift compact protocol types.
const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const I8: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

/// Deepest nesting of a page header caplens reads (statistics are two levels down).
const MAX_THRIFT_DEPTH: usize = 16;

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("invalid page header: {what}"),
    )
}

fn byte(r: &mut impl Read) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn varint(r: &mut impl Read) -> std::io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = byte(r)?;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("a varint longer than 64 bits"))
}

fn zigzag_i32(r: &mut impl Read) -> std::io::Result<i32> {
    let v = varint(r)?;
    let v = u32::try_from(v).map_err(|_| invalid("an i32 out of range"))?;
    Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// The next field of a struct: its id and type, `None` at the struct's end.
fn field_header(r: &mut impl Read, last: &mut i16) -> std::io::Result<Option<(i16, u8)>> {
    let b = byte(r)?;
    if b == 0 {
        return Ok(None);
    }
    let ty = b & 0x0f;
    let delta = (b >> 4) as i16;
    let id = if delta != 0 {
        last.checked_add(delta)
            .ok_or_else(|| invalid("a field id out of range"))?
    } else {
        let v = varint(r)?;
        let v = u16::try_from(v).map_err(|_| invalid("a field id out of range"))?;
        ((v >> 1) as i16) ^ -((v & 1) as i16)
    };
    *last = id;
    Ok(Some((id, ty)))
}

/// Skips a value of type `ty` (`in_field`: a field's value, where booleans are in the type).
fn skip(r: &mut impl Read, ty: u8, in_field: bool, depth: usize) -> std::io::Result<()> {
    if depth > MAX_THRIFT_DEPTH {
        return Err(invalid("nested too deep"));
    }
    match ty {
        BOOL_TRUE | BOOL_FALSE if in_field => {}
        BOOL_TRUE | BOOL_FALSE | I8 => {
            byte(r)?;
        }
        I16 | I32 | I64 => {
            varint(r)?;
        }
        DOUBLE => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
        }
        BINARY => {
            let len = varint(r)?;
            let skipped = std::io::copy(&mut r.take(len), &mut std::io::sink())?;
            if skipped != len {
                return Err(invalid("cut short"));
            }
        }
        LIST | SET => {
            let head = byte(r)?;
            let size = match head >> 4 {
                15 => varint(r)?,
                n => n as u64,
            };
            for _ in 0..size {
                skip(r, head & 0x0f, false, depth + 1)?;
            }
        }
        MAP => {
            let size = varint(r)?;
            if size > 0 {
                let types = byte(r)?;
                for _ in 0..size {
                    skip(r, types >> 4, false, depth + 1)?;
                    skip(r, types & 0x0f, false, depth + 1)?;
                }
            }
        }
        STRUCT => {
            let mut last = 0;
            while let Some((_, ty)) = field_header(r, &mut last)? {
                skip(r, ty, true, depth + 1)?;
            }
        }
        other => return Err(invalid(&format!("unknown type {other}"))),
    }
    Ok(())
}

/// Reads one page header.
fn page_header(r: &mut impl Read) -> std::io::Result<PageHeader> {
    let mut header = PageHeader::default();
    let (mut sizes, mut last) = (0, 0);
    while let Some((id, ty)) = field_header(r, &mut last)? {
        match (id, ty) {
            (2, I32) => {
                header.uncompressed = zigzag_i32(r)?;
                sizes += 1;
            }
            (3, I32) => {
                header.compressed = zigzag_i32(r)?;
                sizes += 1;
            }
            (7, STRUCT) => {
                let mut last = 0;
                while let Some((id, ty)) = field_header(r, &mut last)? {
                    match (id, ty) {
                        (1, I32) => header.dictionary_values = Some(zigzag_i32(r)?),
                        _ => skip(r, ty, true, 1)?,
                    }
                }
            }
            _ => skip(r, ty, true, 0)?,
        }
    }
    if sizes < 2 {
        return Err(invalid("no page sizes"));
    }
    Ok(header)
}

/// The pages of one column chunk as the crate reads them, watched for what they make a row
/// materialise: a value costs [`VALUE_COST`] plus, from a dictionary, its longest entry, and a
/// row of a repeated column costs all its values (a row's values are counted from the pages'
/// repetition levels). A row over [`MAX_PARQUET_ROW_BYTES`] in one column, or pages that would
/// together materialise more than [`MAX_INFLATION_RATIO`] times the file, stop the read.
struct GuardedPages {
    inner: Box<dyn PageReader>,
    column: ColumnDescPtr,
    /// Rows of the row groups before this one.
    first_row: u64,
    guard: Arc<Mutex<Guard>>,
    /// The longest entry of the chunk's dictionary.
    longest_entry: u64,
    /// Rows started in this chunk (the current one is the last).
    rows: u64,
    /// What the current row has cost so far (across pages).
    row_cost: u64,
}

impl GuardedPages {
    fn new(
        inner: Box<dyn PageReader>,
        column: ColumnDescPtr,
        first_row: u64,
        guard: Arc<Mutex<Guard>>,
    ) -> Self {
        GuardedPages {
            inner,
            column,
            first_row,
            guard,
            longest_entry: 0,
            rows: 0,
            row_cost: 0,
        }
    }

    fn watch(&mut self, page: &Page) -> Result<(), ParquetError> {
        let (buf, values, encoding, levels) = match page {
            Page::DictionaryPage {
                buf, num_values, ..
            } => {
                self.longest_entry = longest_entry(&self.column, buf, *num_values);
                return Ok(());
            }
            Page::DataPage {
                buf,
                num_values,
                encoding,
                rep_level_encoding,
                ..
            } => {
                let levels = match (self.column.max_rep_level(), rep_level_encoding) {
                    (0, _) => Levels::None,
                    (_, Encoding::RLE) => {
                        // v1: the repetition levels first, after their length.
                        let len = buf
                            .get(..4)
                            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                            .unwrap_or(0);
                        Levels::Hybrid(buf.get(4..4 + len).unwrap_or(&[]))
                    }
                    _ => Levels::Unknown,
                };
                (buf, *num_values, *encoding, levels)
            }
            Page::DataPageV2 {
                buf,
                num_values,
                encoding,
                rep_levels_byte_len,
                ..
            } => {
                let levels = match self.column.max_rep_level() {
                    0 => Levels::None,
                    _ => Levels::Hybrid(buf.get(..*rep_levels_byte_len as usize).unwrap_or(&[])),
                };
                (buf, *num_values, *encoding, levels)
            }
        };
        let from_dictionary = matches!(
            encoding,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
        );
        // What one value costs; values stored in the page itself are counted as the page.
        let per_value = VALUE_COST
            + if from_dictionary {
                self.longest_entry
            } else {
                0
            };
        let page_bytes = if from_dictionary { 0 } else { buf.len() as u64 };
        let values = u64::from(values);
        {
            let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
            guard.materialised = guard
                .materialised
                .saturating_add(values.saturating_mul(per_value))
                .saturating_add(page_bytes);
            if inflation_exceeded(guard.materialised, guard.file_len) {
                let message = format!(
                    "the file's values would take more than {MAX_INFLATION_RATIO} times its size in memory ({} MiB); refused as a decompression bomb",
                    mib(guard.materialised)
                );
                drop(guard);
                return Err(refuse(&self.guard, message));
            }
        }
        match levels {
            // One value per row: bounded by the page (or the dictionary entry) itself.
            Levels::None => Ok(()),
            Levels::Unknown => {
                // Levels caplens does not decode (the deprecated BIT_PACKED): the whole page
                // counts for the current row.
                self.row_cost = self
                    .row_cost
                    .saturating_add(values.saturating_mul(per_value))
                    .saturating_add(page_bytes);
                self.check_row()
            }
            Levels::Hybrid(levels) => {
                let bit_width = bit_width(self.column.max_rep_level());
                let mut touched = false;
                let mut result = Ok(());
                for_each_level_run(levels, bit_width, values, |level, count| {
                    if result.is_err() {
                        return;
                    }
                    let mut count = count;
                    if level == 0 {
                        // `count` rows start, one value each but the last so far.
                        self.rows += count;
                        self.row_cost = 0;
                        touched = false;
                        count = 1;
                    }
                    if !touched {
                        self.row_cost = self.row_cost.saturating_add(page_bytes);
                        touched = true;
                    }
                    self.row_cost = self
                        .row_cost
                        .saturating_add(count.saturating_mul(per_value));
                    result = self.check_row();
                });
                result
            }
        }
    }

    fn check_row(&self) -> Result<(), ParquetError> {
        if self.row_cost <= MAX_PARQUET_ROW_BYTES {
            return Ok(());
        }
        Err(refuse(
            &self.guard,
            format!(
                "row {}: its column {} would take more than {} MiB in memory (a list of many values, or of long dictionary entries repeated); caplens reads parquet rows up to that size",
                self.first_row + self.rows.max(1),
                self.column.path(),
                mib(MAX_PARQUET_ROW_BYTES)
            ),
        ))
    }
}

/// The repetition levels of a data page, as far as caplens reads them.
enum Levels<'a> {
    /// Not a repeated column: a value per row.
    None,
    /// RLE/bit-packed hybrid levels (without a length prefix).
    Hybrid(&'a [u8]),
    /// Levels in an encoding caplens does not decode.
    Unknown,
}

/// Bits of a level up to `max`.
fn bit_width(max: i16) -> u8 {
    (16 - (max.max(0) as u16).leading_zeros()) as u8
}

/// Calls `run(level, count)` for the runs of the first `values` levels of `data`, encoded in
/// the RLE/bit-packed hybrid encoding with `bit_width` bits each; stops early at the data's end.
fn for_each_level_run(data: &[u8], bit_width: u8, values: u64, mut run: impl FnMut(u64, u64)) {
    let mut r = data;
    let mut left = values;
    let value_bytes = bit_width.div_ceil(8) as usize;
    while left > 0 {
        let Ok(header) = varint(&mut r) else {
            return;
        };
        if header & 1 == 0 {
            // A run of one value.
            let count = (header >> 1).min(left);
            let Some(bytes) = r.get(..value_bytes) else {
                return;
            };
            let mut level = 0u64;
            for (i, b) in bytes.iter().enumerate() {
                level |= u64::from(*b) << (8 * i);
            }
            r = &r[value_bytes..];
            run(level, count);
            left -= count;
        } else {
            // Groups of eight bit-packed values.
            let groups = header >> 1;
            let bits = groups.saturating_mul(8).saturating_mul(bit_width as u64);
            let Some(bytes) = usize::try_from(bits.div_ceil(8))
                .ok()
                .and_then(|n| r.get(..n))
            else {
                return;
            };
            r = &r[bytes.len()..];
            let count = groups.saturating_mul(8).min(left);
            for i in 0..count {
                let mut level = 0u64;
                for bit in 0..bit_width as u64 {
                    let at = i * bit_width as u64 + bit;
                    if bytes[(at / 8) as usize] >> (at % 8) & 1 == 1 {
                        level |= 1 << bit;
                    }
                }
                run(level, 1);
            }
            left -= count;
        }
    }
}

/// The longest entry of a (plain-encoded) dictionary page of `column`.
fn longest_entry(column: &ColumnDescPtr, buf: &[u8], values: u32) -> u64 {
    match column.physical_type() {
        PhysicalType::BYTE_ARRAY => {
            let (mut at, mut longest) = (0usize, 0u64);
            for _ in 0..values {
                let Some(len) = buf.get(at..at + 4) else {
                    break;
                };
                let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                longest = longest.max(len as u64);
                at = at.saturating_add(4 + len);
            }
            longest
        }
        PhysicalType::FIXED_LEN_BYTE_ARRAY => column.type_length().max(0) as u64,
        _ => 0,
    }
}

impl PageReader for GuardedPages {
    fn get_next_page(&mut self) -> parquet::errors::Result<Option<Page>> {
        let page = self.inner.get_next_page()?;
        if let Some(page) = &page {
            self.watch(page)?;
        }
        Ok(page)
    }

    fn peek_next_page(&mut self) -> parquet::errors::Result<Option<PageMetadata>> {
        self.inner.peek_next_page()
    }

    fn skip_next_page(&mut self) -> parquet::errors::Result<()> {
        self.inner.skip_next_page()
    }

    fn supports_deferred_dictionary(&self) -> bool {
        self.inner.supports_deferred_dictionary()
    }

    fn take_deferred_dictionary(&mut self) -> parquet::errors::Result<Option<Page>> {
        let page = self.inner.take_deferred_dictionary()?;
        if let Some(page) = &page {
            self.watch(page)?;
        }
        Ok(page)
    }

    fn at_record_boundary(&mut self) -> parquet::errors::Result<bool> {
        self.inner.at_record_boundary()
    }
}

impl Iterator for GuardedPages {
    type Item = parquet::errors::Result<Page>;
    fn next(&mut self) -> Option<Self::Item> {
        self.get_next_page().transpose()
    }
}

/// Runs a call into the parquet crate, turning its panic into the panic's message.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown error");
        format!("the parquet reader failed ({message}); the file is corrupt")
    })
}
