//! `.eval` logs, zip archives: telling one by its magic, reading its header member and its sample
//! members one by one, within the Inspect limits and the archive's inflation ratio.

use super::header::Header;
use super::sample::SlotSeed;
use super::typed::object;
use super::Seen;
use crate::ingest::formats::common::PythonJson;
use crate::ingest::limits::{
    inflation_exceeded, mib, KeptBudget, LimitError, Limited, Tallied, Tally,
    MAX_INSPECT_HEADER_BYTES, MAX_INSPECT_SAMPLE_BYTES, MAX_KEPT_BYTES,
};
use crate::ingest::{InputError, InputFile, ReadStop, RecordSink};
use serde::de::DeserializeSeed;
use std::io::{BufReader, Read};
use std::sync::atomic::Ordering;

pub(super) const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

pub(super) fn is_zip(input: &InputFile) -> Result<bool, InputError> {
    let mut file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(input.error(format!("cannot read: {e}"))),
        }
    }
    Ok(got == 4 && magic == ZIP_MAGIC)
}

type Archive = zip::ZipArchive<BufReader<std::fs::File>>;

/// The archive of `input`. Opening reads the central directory at the end of the file, so
/// progress is not counted by bytes read but by members done ([`read_eval`]).
fn open_archive(input: &InputFile) -> Result<Archive, InputError> {
    let file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    zip::ZipArchive::new(BufReader::with_capacity(256 * 1024, file)).map_err(|e| {
        input.error(format!(
            "not a readable .eval archive (truncated or corrupt zip): {e}"
        ))
    })
}

/// Whether a member is one sample: `samples/{id}_epoch_{n}.json`.
fn is_sample_member(name: &str) -> bool {
    name.strip_prefix("samples/")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|stem| stem.contains("_epoch_") && !stem.contains('/'))
}

/// The compression methods of the members Inspect has written: stored, deflate (older
/// versions) and zstd (ZIP method 93, current versions).
fn readable_method(method: zip::CompressionMethod) -> bool {
    use zip::CompressionMethod as M;
    matches!(method, M::Stored | M::Deflated | M::Zstd)
}

/// The error for a member whose compression caplens cannot read (the whole archive, since
/// Inspect compresses every member alike).
fn unreadable_method(input: &InputFile, name: &str, method: zip::CompressionMethod) -> InputError {
    let shown = match method.to_string() {
        n if n == "Unknown" => format!("{method:?}"),
        n => n,
    };
    input.error(format!(
        "member {name} of the .eval archive is compressed with ZIP method {shown}, which caplens cannot read (it reads stored, deflate and zstd members: what Inspect writes)"
    ))
}

pub(super) fn read_eval(
    input: &InputFile,
    header: &Header,
    seen: &mut Seen,
    sink: &mut dyn RecordSink,
) -> Result<(), ReadStop> {
    let mut archive = open_archive(input)?;
    let archive_bytes = std::fs::metadata(&input.path).map_or(0, |m| m.len());
    // Bytes the sample members inflated to, together (against the archive's size).
    let inflated = Tally::default();
    for index in 0..archive.len() {
        let line = index as u64 + 1;
        if inflation_exceeded(inflated.get(), archive_bytes) {
            return Err(ReadStop::Input(input.error(format!(
                "the .eval archive {}",
                LimitError::Inflation {
                    inflated: inflated.get(),
                    compressed: archive_bytes,
                }
            ))));
        }
        let member = archive.by_index(index).map_err(|e| {
            ReadStop::Input(input.error(format!("corrupt .eval archive at member {line}: {e}")))
        })?;
        let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
        // Progress: the end of this member's data in the file.
        let member_end = member
            .header_start()
            .saturating_add(member.compressed_size());
        input.progress.fetch_max(member_end, Ordering::Relaxed);
        if !is_sample_member(&name) {
            continue;
        }
        if !readable_method(member.compression()) {
            return Err(ReadStop::Input(unreadable_method(
                input,
                &name,
                member.compression(),
            )));
        }
        let member = Limited::new(
            Tallied {
                inner: member,
                tally: inflated.clone(),
            },
            MAX_INSPECT_SAMPLE_BYTES,
        );
        let budget = KeptBudget::new(MAX_KEPT_BYTES);
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(PythonJson::new(member)));
        let parsed = SlotSeed(&budget)
            .deserialize(&mut de)
            .and_then(|slot| de.end().map(|()| slot));
        match parsed.map_err(LimitError::in_json) {
            Ok(slot) => match seen.sample(slot, line, header) {
                Ok(Some(record)) => sink.record(record)?,
                Ok(None) => {}
                Err((field, msg)) => {
                    sink.reject(input.line_error(line, Some(&field), format!("{name}: {msg}")))?
                }
            },
            Err(Ok(limit)) => {
                seen.samples += 1;
                sink.reject(input.line_error(
                    line,
                    None,
                    format!(
                        "{name}: {limit} decompressed; caplens reads Inspect samples up to {} MiB",
                        mib(MAX_INSPECT_SAMPLE_BYTES)
                    ),
                ))?
            }
            Err(Err(e)) if e.is_io() => {
                return Err(ReadStop::Input(input.error(format!(
                    "corrupt .eval archive: cannot read member {name}: {e}"
                ))))
            }
            Err(Err(e)) => {
                seen.samples += 1;
                sink.reject(input.line_error(line, None, format!("{name}: invalid JSON: {e}")))?
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(&input.path) {
        input.progress.fetch_max(meta.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// `eval`, `plan` and `status` of `header.json`, or of `_journal/start.json` in a log still
/// being written (status `started`), which has no header yet. Either is read up to
/// [`MAX_INSPECT_HEADER_BYTES`] decompressed.
pub(super) fn eval_header(input: &InputFile) -> Result<Header, InputError> {
    let mut archive = open_archive(input)?;
    for name in ["header.json", "_journal/start.json"] {
        let Some(index) = archive.index_for_name(name) else {
            continue;
        };
        let member = archive
            .by_index(index)
            .map_err(|e| input.error(format!("corrupt .eval archive: {name}: {e}")))?;
        if !readable_method(member.compression()) {
            return Err(unreadable_method(input, name, member.compression()));
        }
        let member = Limited::new(member, MAX_INSPECT_HEADER_BYTES);
        let budget = KeptBudget::new(MAX_INSPECT_HEADER_BYTES);
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(PythonJson::new(member)));
        let mut header = object::<Header>(&budget)
            .deserialize(&mut de)
            .and_then(|header| de.end().map(|()| header))
            .map_err(|e| match LimitError::in_json(e) {
                Ok(limit) => input.error(format!(
                    "member {name} of the .eval archive is {limit} decompressed; caplens reads an Inspect header up to that size"
                )),
                Err(e) if e.is_io() => input.error(format!(
                    "corrupt .eval archive: cannot read member {name}: {e}"
                )),
                Err(e) => input.error(format!("{name}: not valid JSON: {e}")),
            })?;
        if budget.exceeded() {
            return Err(input.error(format!(
                "member {name} of the .eval archive holds more than {} MiB of fields caplens reads; caplens reads an Inspect header up to that size",
                mib(MAX_INSPECT_HEADER_BYTES)
            )));
        }
        if name != "header.json" {
            header.status = Some("started".to_string());
        }
        return Ok(header);
    }
    Ok(Header::default())
}
