//! PostgreSQL's binary COPY format for rollout rows: [`CopyBuffer`] encodes each row as it
//! arrives, so a buffer holds bytes ready to send, not strings.

use super::rollouts::{FLUSH_BYTES, ROLLOUT_COLUMN_COUNT};
use super::NewRollout;

/// Rows encoded in PostgreSQL's binary COPY format as they arrive.
pub struct CopyBuffer {
    pub(super) data: Vec<u8>,
    pub(super) rows: usize,
}

impl CopyBuffer {
    const SIGNATURE: &'static [u8] = b"PGCOPY\n\xff\r\n\0";

    pub(super) fn new() -> Self {
        let mut data = Vec::with_capacity(FLUSH_BYTES + (1 << 16));
        data.extend_from_slice(Self::SIGNATURE);
        data.extend_from_slice(&0i32.to_be_bytes()); // flags
        data.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyBuffer { data, rows: 0 }
    }

    fn null(&mut self) {
        self.data.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.data.extend_from_slice(&8i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn int4(&mut self, v: Option<i64>) {
        match v.and_then(|v| i32::try_from(v).ok()) {
            Some(v) => {
                self.data.extend_from_slice(&4i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn float8(&mut self, v: Option<f64>) {
        match v.filter(|x| x.is_finite()) {
            Some(v) => {
                self.data.extend_from_slice(&8i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                let len = i32::try_from(s.len()).expect("a text field under 2 GiB");
                self.data.extend_from_slice(&len.to_be_bytes());
                self.data.extend_from_slice(s.as_bytes());
            }
            None => self.null(),
        }
    }

    /// Appends one row, columns in [`ROLLOUT_COLUMNS`](super::rollouts::ROLLOUT_COLUMNS) order
    /// and with the schema's types (`file_correct` and `caplens_verdict` are INTEGER, the rest
    /// BIGINT, DOUBLE PRECISION or TEXT).
    pub(super) fn push(&mut self, r: &NewRollout<'_>) {
        self.data
            .extend_from_slice(&(ROLLOUT_COLUMN_COUNT as i16).to_be_bytes());
        self.int8(Some(r.run_id));
        self.int8(Some(r.problem_id));
        self.int8(Some(r.sample_index));
        self.text(r.response);
        self.text(r.extracted_answer);
        self.int8(Some(r.correct as i64));
        self.int8(r.token_count);
        self.text(r.finish_reason);
        self.float8(r.mean_entropy);
        self.float8(r.mean_rbf);
        self.float8(r.perplexity);
        self.int8(Some(r.quality_flags));
        self.text(r.trace.map(|t| t.0));
        self.int8(r.trace.map(|t| t.1));
        self.int8(r.trace.map(|t| t.2));
        self.int4(r.file_correct.map(i64::from));
        self.int4(r.caplens_verdict);
        self.int8(r.response_range.map(|r| r.0));
        self.int8(r.response_range.map(|r| r.1));
        self.rows += 1;
    }

    /// The buffer with its trailer, ready to send.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_buffer_is_postgres_binary_format() {
        let mut b = CopyBuffer::new();
        b.push(&NewRollout {
            run_id: 1,
            problem_id: 2,
            sample_index: 3,
            response: Some("é"),
            response_range: None,
            extracted_answer: None,
            correct: true,
            token_count: None,
            finish_reason: None,
            mean_entropy: Some(0.5),
            mean_rbf: Some(f64::NAN),
            perplexity: None,
            quality_flags: 0,
            trace: None,
            file_correct: Some(false),
            caplens_verdict: Some(1),
        });
        let data = b.finish();
        // Signature, flags, extension length; then the field count of the one tuple.
        assert_eq!(&data[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&data[11..19], &[0u8; 8]);
        assert_eq!(&data[19..21], &19i16.to_be_bytes());
        // run_id: length 8, value 1.
        assert_eq!(&data[21..25], &8i32.to_be_bytes());
        assert_eq!(&data[25..33], &1i64.to_be_bytes());
        // The response (4th field) is its UTF-8 bytes with their length.
        let response = 21 + 3 * 12;
        assert_eq!(&data[response..response + 4], &2i32.to_be_bytes());
        assert_eq!(&data[response + 4..response + 6], "é".as_bytes());
        // A NaN is stored as NULL, like the INSERT path's `finite`.
        assert!(
            data.windows(4)
                .filter(|w| *w == (-1i32).to_be_bytes())
                .count()
                >= 8
        );
        // Trailer.
        assert_eq!(&data[data.len() - 2..], &(-1i16).to_be_bytes());
    }
}
