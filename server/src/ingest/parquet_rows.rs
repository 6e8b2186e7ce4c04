//! Parquet rows as JSON values: what the lighteval importer and dataset uploads share.
//!
//! Read with the `parquet` crate's record API (no arrow), row group by row group, so memory is
//! bounded by one row group of the projected columns.

use parquet::record::{Field, Row};
use serde_json::{Map, Value};

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

/// Calls `each(row_number, row)` for every row of `reader` (1-based across the file), one row
/// group at a time, reading only the columns of `projection` (all when `None`). `after_group`
/// gets each row group's compressed size (for progress). Errors are (row number, message).
///
/// The parquet crate's row reader panics on some corrupt files (its documented `byte_range`
/// panic on a negative column offset or size, assertions on levels): the footer's column
/// ranges are checked first, and any other panic inside the crate becomes an error of the row
/// being read (found by the `lighteval` fuzz target, docs/fuzzing.md).
pub fn for_each_row<E>(
    reader: &dyn parquet::file::reader::FileReader,
    projection: Option<&parquet::schema::types::Type>,
    mut after_group: impl FnMut(u64),
    mut each: impl FnMut(u64, Map<String, Value>) -> Result<(), E>,
    decode_error: impl Fn(u64, String) -> E,
) -> Result<(), E> {
    let mut row_no = 0u64;
    for group in 0..reader.num_row_groups() {
        let columns = reader.metadata().row_group(group).columns();
        if let Some(column) = columns.iter().find(|c| {
            c.dictionary_page_offset().unwrap_or(c.data_page_offset()) < 0
                || c.compressed_size() < 0
        }) {
            return Err(decode_error(
                row_no + 1,
                format!(
                    "corrupt parquet footer: column {} of row group {group} has a negative offset or size",
                    column.column_path()
                ),
            ));
        }
        let cannot_read = |e: String| format!("cannot read row group {group}: {e}");
        let group_reader = match guarded(|| reader.get_row_group(group)) {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(decode_error(row_no + 1, cannot_read(e.to_string()))),
            Err(panic) => return Err(decode_error(row_no + 1, cannot_read(panic))),
        };
        let mut rows = match guarded(|| group_reader.get_row_iter(projection.cloned())) {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(decode_error(row_no + 1, cannot_read(e.to_string()))),
            Err(panic) => return Err(decode_error(row_no + 1, cannot_read(panic))),
        };
        loop {
            let row = match guarded(|| rows.next()) {
                Ok(None) => break,
                Ok(Some(row)) => row,
                Err(panic) => {
                    return Err(decode_error(
                        row_no + 1,
                        format!("cannot decode the row: {panic}"),
                    ))
                }
            };
            row_no += 1;
            let row =
                row.map_err(|e| decode_error(row_no, format!("cannot decode the row: {e}")))?;
            each(row_no, row_object(&row))?;
        }
        drop(rows);
        after_group(group_reader.metadata().compressed_size().max(0) as u64);
    }
    Ok(())
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
