//! Reading native files: line by line (`read_files`, every field) and block-parallel over the
//! core fields (`read_core_parallel`), with exact line numbers in errors.

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::PathBuf;

use super::parse::{parse_line, parse_line_serde};
use super::{fast, CoreLine, InputError, LineInfo, NativeLine, Needs, ReadStats};
use crate::ingest::limits::{InflationGuard, LimitError, Tallied, Tally, MAX_LINE_BYTES};

/// The error of a line longer than [`MAX_LINE_BYTES`] (it is not held).
fn too_long(file: &str, line: u64) -> InputError {
    line_error(
        file,
        line,
        None,
        format!(
            "line longer than {} MiB; caplens reads lines up to that length",
            MAX_LINE_BYTES >> 20
        ),
    )
}

pub(super) const SKIPPED_ERRORS_KEPT: usize = 10;

/// Reads every line of every file in order and hands each valid record to `each`.
///
/// With `skip_invalid`, a line that fails to parse or validate (or is longer than
/// [`MAX_LINE_BYTES`], which is skipped without being held) is counted in
/// [`ReadStats::skipped`] and reading continues; otherwise the first such line is returned as
/// the error. I/O errors (a file that cannot be opened or read, corrupt gzip) always stop.
/// An error returned by `each` stops the read and is returned as is.
pub fn read_files<E>(
    files: &[PathBuf],
    needs: Needs,
    skip_invalid: bool,
    mut each: impl FnMut(&NativeLine<'_>, &LineInfo<'_>) -> Result<(), E>,
) -> Result<ReadStats, E>
where
    E: From<InputError>,
{
    let mut stats = ReadStats::default();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    for (file_index, path) in files.iter().enumerate() {
        let display = path.display().to_string();
        let file_err = |message: String| InputError {
            file: display.clone(),
            line: None,
            field: None,
            message,
        };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        let mut reader = open_reader(file).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let mut line_no = 0u64;
        let mut handle = |bytes: &[u8], line_no: u64, stats: &mut ReadStats| -> Result<(), E> {
            let bytes = trim_line_end(bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let err = match std::str::from_utf8(bytes) {
                Err(e) => line_error(
                    &display,
                    line_no,
                    None,
                    format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                ),
                Ok(text) => match parse_line(text, needs) {
                    Ok(record) => {
                        stats.records += 1;
                        return each(
                            &record,
                            &LineInfo {
                                file_index,
                                file: path,
                                line: line_no,
                                raw: text,
                            },
                        );
                    }
                    Err((field, msg)) => line_error(&display, line_no, field, msg),
                },
            };
            match err {
                err if skip_invalid => {
                    stats.skip(err);
                    Ok(())
                }
                err => Err(err.into()),
            }
        };
        // Lines that fit in the reader's buffer are parsed in place; a line split across
        // refills (or longer than the buffer) is assembled in `buf`, up to the limit.
        buf.clear();
        // Inside a line that was too long: its bytes are dropped up to its newline.
        let mut skipping = false;
        loop {
            let chunk = reader.fill_buf().map_err(|e| InputError {
                file: display.clone(),
                line: Some(line_no + 1),
                field: None,
                message: format!("read error: {e}"),
            })?;
            if chunk.is_empty() {
                if !buf.is_empty() {
                    line_no += 1;
                    stats.bytes += buf.len() as u64;
                    handle(&buf, line_no, &mut stats)?;
                    buf.clear();
                }
                break;
            }
            let mut consumed = 0;
            if skipping {
                match find_newline(chunk) {
                    Some(pos) => {
                        consumed = pos + 1;
                        skipping = false;
                    }
                    None => consumed = chunk.len(),
                }
                stats.bytes += consumed as u64;
            }
            while let Some(pos) = find_newline(&chunk[consumed..]) {
                let end = consumed + pos;
                line_no += 1;
                if buf.is_empty() {
                    stats.bytes += (end + 1 - consumed) as u64;
                    handle(&chunk[consumed..end], line_no, &mut stats)?;
                } else {
                    buf.extend_from_slice(&chunk[consumed..end]);
                    stats.bytes += buf.len() as u64 + 1;
                    handle(&buf, line_no, &mut stats)?;
                    buf.clear();
                }
                consumed = end + 1;
            }
            if buf.len() + (chunk.len() - consumed) > MAX_LINE_BYTES {
                line_no += 1;
                stats.bytes += (buf.len() + chunk.len() - consumed) as u64;
                buf.clear();
                buf.shrink_to(64 * 1024);
                skipping = true;
                let err = too_long(&display, line_no);
                if !skip_invalid {
                    return Err(err.into());
                }
                stats.skipped += 1;
                if stats.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                    stats.first_skipped.push(err);
                }
            } else {
                buf.extend_from_slice(&chunk[consumed..]);
            }
            let len = chunk.len();
            reader.consume(len);
        }
    }
    Ok(stats)
}

/// The place of a line in the whole input (files in the order given, then lines), comparable
/// across the threads of [`read_core_parallel`] so that callers can restore first-appearance
/// order exactly. It orders like the input; it is not a line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputPosition {
    /// Block number, counted over all files.
    block: u64,
    /// Line within the block, from 1.
    line: u64,
}

/// Bytes a thread takes at a time: small enough to stay in the L2 cache between the read and the
/// scan, large enough that the lock and the read call are negligible per line.
pub(super) const BLOCK_BYTES: usize = 256 * 1024;

/// A sensible number of reader threads (and accumulators) for [`read_core_parallel`].
pub fn reader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// The input of one file, shared by the threads: whoever holds the lock reads the next block.
pub(super) struct BlockSource {
    reader: Box<dyn Read + Send>,
    /// The unfinished last line of the previous block, which starts the next one.
    carry: Vec<u8>,
    /// Number of the next block within the file.
    next_block: u64,
    eof: bool,
}

impl BlockSource {
    /// Fills `buf` with the next block: whole lines only (the last line of the input may lack its
    /// newline), at least one line even when it is longer than `BLOCK_BYTES`. Returns its length
    /// (0 at the end).
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let carry = self.carry.len();
        // The carry is shorter than the longest line read, so this is room for more of it.
        let want = BLOCK_BYTES.max(2 * carry).min(MAX_LINE_BYTES);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        buf[..carry].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut filled = carry;
        loop {
            while filled < buf.len() && !self.eof {
                match self.reader.read(&mut buf[filled..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.eof {
                return Ok(filled);
            }
            match buf[..filled].iter().rposition(|&b| b == b'\n') {
                Some(last) => {
                    self.carry.extend_from_slice(&buf[last + 1..filled]);
                    return Ok(last + 1);
                }
                // A line longer than the buffer: read on, up to the longest line read.
                None if buf.len() >= MAX_LINE_BYTES => {
                    return Err(LimitError::TooLong {
                        limit: MAX_LINE_BYTES as u64,
                    }
                    .into_io())
                }
                None => {
                    let len = buf.len();
                    buf.resize((2 * len).min(MAX_LINE_BYTES), 0);
                }
            }
        }
    }
}

/// What one thread found in one file.
#[derive(Default)]
pub(super) struct ThreadReport {
    /// (block within the file, lines in it) of every block this thread scanned.
    blocks: Vec<(u64, u64)>,
    bytes: u64,
    records: u64,
    skipped: u64,
    /// (block, error with the line number *within the block*): the first few skipped lines.
    first_skipped: Vec<(u64, InputError)>,
    /// The error that stopped this thread, located the same way.
    fatal: Option<(u64, InputError)>,
}

/// Reads every line of every file like [`read_files`], on `shards.len()` threads, handing each
/// valid record to `each` with the accumulator of the thread and the line's [`InputPosition`].
///
/// Files are cut into blocks of whole lines; the threads take blocks in turn, so records reach
/// the accumulators out of input order: callers that care about order merge the accumulators by
/// position. Only the core fields (and `sample` when `want_sample`) are read, through the fast
/// scanner with serde_json as the fallback and the authority on errors. Errors, `skip_invalid`
/// and the statistics behave exactly as in [`read_files`], line numbers included: a failing
/// line reports the first error in input order.
pub fn read_core_parallel<A: Send>(
    files: &[PathBuf],
    want_sample: bool,
    skip_invalid: bool,
    shards: &mut [A],
    each: impl Fn(&mut A, &CoreLine<'_>, InputPosition) + Sync,
) -> Result<ReadStats, InputError> {
    assert!(
        !shards.is_empty(),
        "read_core_parallel needs at least one accumulator"
    );
    let mut stats = ReadStats::default();
    let mut first_block = 0u64;
    for path in files {
        let display = path.display().to_string();
        let file_err = |message: String| InputError {
            file: display.clone(),
            line: None,
            field: None,
            message,
        };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        // A small regular file is not worth a thread (pipes have no size: they get all threads).
        let small = file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() < 2 * BLOCK_BYTES as u64);
        let threads = if small { 1 } else { shards.len() };
        let reader = open_stream(file).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let source = std::sync::Mutex::new(BlockSource {
            reader,
            carry: Vec::new(),
            next_block: 0,
            eof: false,
        });
        // Blocks after this one are not needed: an error was found in it.
        let stop_after = std::sync::atomic::AtomicU64::new(u64::MAX);
        let scan = |shard: &mut A| -> ThreadReport {
            let mut report = ThreadReport::default();
            let mut buf = Vec::new();
            loop {
                let (block, len) = {
                    let mut src = source.lock().unwrap_or_else(|e| e.into_inner());
                    let block = src.next_block;
                    if block > stop_after.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    match src.next(&mut buf) {
                        Ok(0) => break,
                        Ok(len) => {
                            src.next_block += 1;
                            (block, len)
                        }
                        Err(e) => {
                            src.eof = true;
                            src.carry.clear();
                            stop_after.fetch_min(block, std::sync::atomic::Ordering::Relaxed);
                            report.fatal = Some((
                                block,
                                match LimitError::of(&e) {
                                    Some(_) => too_long(&display, 1),
                                    None => {
                                        line_error(&display, 1, None, format!("read error: {e}"))
                                    }
                                },
                            ));
                            break;
                        }
                    }
                };
                report.bytes += len as u64;
                let lines = scan_block(
                    &buf[..len],
                    want_sample,
                    &display,
                    |line, local| {
                        report.records += 1;
                        each(
                            shard,
                            line,
                            InputPosition {
                                block: first_block + block,
                                line: local,
                            },
                        );
                    },
                    |err| {
                        if skip_invalid {
                            report.skipped += 1;
                            if report.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                                report.first_skipped.push((block, err));
                            }
                            true
                        } else {
                            report.fatal = Some((block, err));
                            false
                        }
                    },
                );
                report.blocks.push((block, lines));
                if report.fatal.is_some() {
                    stop_after.fetch_min(block, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
            report
        };
        let mut reports: Vec<ThreadReport> = std::thread::scope(|s| {
            let (first, rest) = shards[..threads]
                .split_first_mut()
                .expect("at least one shard");
            let handles: Vec<_> = rest
                .iter_mut()
                .map(|shard| s.spawn(|| scan(shard)))
                .collect();
            let mut reports = vec![scan(first)];
            reports.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            reports
        });
        // Line numbers: each block's lines start after those of the blocks before it.
        let blocks = source
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .next_block;
        let mut lines_before = vec![0u64; blocks as usize + 1];
        for &(block, lines) in reports.iter().flat_map(|r| &r.blocks) {
            lines_before[block as usize + 1] = lines;
        }
        for i in 1..lines_before.len() {
            lines_before[i] += lines_before[i - 1];
        }
        let locate = |(block, mut err): (u64, InputError)| {
            err.line = err.line.map(|l| l + lines_before[block as usize]);
            err
        };
        if let Some(fatal) = reports
            .iter_mut()
            .filter_map(|r| r.fatal.take())
            .min_by_key(|(block, e)| (*block, e.line))
        {
            return Err(locate(fatal));
        }
        let mut skipped: Vec<(u64, InputError)> = reports
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.first_skipped))
            .collect();
        skipped.sort_by_key(|(block, e)| (*block, e.line));
        for err in skipped {
            if stats.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                stats.first_skipped.push(locate(err));
            }
        }
        for r in &reports {
            stats.records += r.records;
            stats.skipped += r.skipped;
            stats.bytes += r.bytes;
        }
        first_block += blocks;
    }
    Ok(stats)
}

/// Scans the lines of one block: `record` gets each valid one with its line number within the
/// block; `error` gets each invalid one (line number within the block) and says whether to go
/// on. Returns the number of lines scanned.
pub(super) fn scan_block(
    block: &[u8],
    want_sample: bool,
    file: &str,
    mut record: impl FnMut(&CoreLine<'_>, u64),
    mut error: impl FnMut(InputError) -> bool,
) -> u64 {
    // One UTF-8 check for the whole block; only a block with a bad byte is checked line by line
    // (to name the line). Splitting valid UTF-8 at b'\n' keeps every piece valid.
    let block_text = std::str::from_utf8(block).ok();
    let needs = Needs {
        sample: want_sample,
        grade: true,
        ..Needs::default()
    };
    let mut line_no = 0u64;
    let mut start = 0;
    let mut key_order = fast::KeyOrder::default();
    while start < block.len() {
        line_no += 1;
        if let Some((core, end)) =
            block_text.and_then(|t| fast::scan_line(t, start, want_sample, &mut key_order))
        {
            record(&core, line_no);
            start = end + 1;
            continue;
        }
        let end = find_newline(&block[start..]).map_or(block.len(), |p| start + p);
        let bytes = trim_line_end(&block[start..end]);
        let line_start = start;
        start = end + 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match block_text {
            Some(t) => &t[line_start..line_start + bytes.len()],
            None => match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let msg = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
                    if error(line_error(file, line_no, None, msg)) {
                        continue;
                    }
                    break;
                }
            },
        };
        match parse_line_serde(text, needs) {
            Ok(line) => record(&CoreLine::of(&line), line_no),
            Err((field, msg)) => {
                if !error(line_error(file, line_no, field, msg)) {
                    break;
                }
            }
        }
    }
    line_no
}

/// `line` (one JSON object) with the value of its top-level field `key` replaced by the JSON
/// string `value`; every other byte (key order, spacing, number spelling) stays as it was.
/// `None` when the line is not an object the scanner can walk or has no such field.
pub fn replace_string_field(line: &str, key: &str, value: &str) -> Option<String> {
    let (start, end) = fast::top_level_value_span(line, key)?;
    let encoded = serde_json::to_string(value).ok()?;
    Some(format!("{}{}{}", &line[..start], encoded, &line[end..]))
}

/// Position of the first newline, eight bytes at a time.
pub(super) fn find_newline(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) ^ (ONES * b'\n' as u64);
        let m = x.wrapping_sub(ONES) & !x & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

pub(super) fn line_error(
    file: &str,
    line: u64,
    field: Option<&'static str>,
    message: String,
) -> InputError {
    InputError {
        file: file.to_string(),
        line: Some(line),
        field: field.map(str::to_string),
        message,
    }
}

pub(super) fn trim_line_end(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    if end > 0 && buf[end - 1] == b'\n' {
        end -= 1;
    }
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    &buf[..end]
}

/// Plain or gzip like [`open_reader`], unbuffered for plain files (the caller reads large
/// blocks), and without seeking, so that pipes work too.
pub(super) fn open_stream(mut file: File) -> std::io::Result<Box<dyn Read + Send>> {
    let mut head = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut head)?;
    let gzip = head == [0x1f, 0x8b];
    let stream = std::io::Cursor::new(head).chain(file);
    if gzip {
        let compressed = Tally::default();
        let counted = Tallied {
            inner: stream,
            tally: compressed.clone(),
        };
        Ok(Box::new(InflationGuard::new(
            flate2::read::MultiGzDecoder::new(counted),
            compressed,
        )))
    } else {
        Ok(Box::new(stream))
    }
}

/// Plain or gzip (magic bytes 1f 8b; concatenated gzip members are read as one stream).
pub(super) fn open_reader(file: File) -> std::io::Result<Box<dyn BufRead>> {
    crate::ingest::decompress(file)
}
