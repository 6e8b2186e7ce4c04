//! Compact, versioned binary encoding of one rollout's token trace, for the blob store (one blob
//! per rollout, so a page reads one rollout's trace without reading others).
//!
//! # Layout, version 1
//! Little-endian throughout; columnar (each field one contiguous array), so a reader can skip a
//! column it does not need and each column compresses well.
//!
//! | field | type | present |
//! |---|---|---|
//! | magic `"CLTT"` | 4 bytes | always |
//! | version = 1 | u16 | always |
//! | flags | u16 (bit 0 token ids, 1 top-K, 2 entropy, 3 RBF, 4 hidden norm, 5 impacts) | always |
//! | n, token count | u32 | always |
//! | token byte lengths | n x u32 | always |
//! | token bytes | concatenated, sum of lengths | always |
//! | chosen-token logprobs | n x f32 | always |
//! | token ids | n x u32 | bit 0 |
//! | alternatives per token | n x u16, total m | bit 1 |
//! | alternative byte lengths, bytes, logprobs | m x u32, concatenated bytes, m x f32 | bit 1 |
//! | exact entropy (nats) | n x f32 | bit 2 |
//! | exact RBF | n x u32 | bit 3 |
//! | hidden-state norm | n x f32 | bit 4 |
//! | impacts: count c, positions, values | u32, c x u32 (strictly increasing, < n), c x f32 | bit 5 |
//!
//! Nothing may follow the last column. Tokens are raw bytes because a BPE token can be an invalid
//! UTF-8 fragment. Floats are stored bit-exactly (NaN payloads included).
//!
//! No compression here, to keep the crate dependency-free; the blob store can wrap the encoded
//! bytes in a zstd frame later (the zstd magic differs from `"CLTT"`, so both can be told apart).
//!
//! [`decode`] checks every length against the remaining input before allocating or reading, and
//! returns an error, never panics, on corrupt or hostile input.

/// The four bytes every encoded trace starts with.
pub const TRACE_MAGIC: [u8; 4] = *b"CLTT";
/// The layout version written by [`encode`] and the only one [`decode`] reads.
pub const TRACE_VERSION: u16 = 1;

const FLAG_TOKEN_IDS: u16 = 1 << 0;
const FLAG_TOP_K: u16 = 1 << 1;
const FLAG_ENTROPY: u16 = 1 << 2;
const FLAG_RBF: u16 = 1 << 3;
const FLAG_HIDDEN_NORM: u16 = 1 << 4;
const FLAG_IMPACTS: u16 = 1 << 5;
const KNOWN_FLAGS: u16 = (1 << 6) - 1;

/// One top-K alternative at a position: the token's bytes and its log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TopAlternative {
    pub token: Vec<u8>,
    pub logprob: f32,
}

/// Intervention impact I_t (eq. 6) measured at one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionImpact {
    pub position: u32,
    pub impact: f32,
}

/// Why a trace is not well-formed (columns of the wrong length, unordered impacts...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceShapeError {
    /// An optional column does not have one entry per token.
    ColumnLength {
        column: &'static str,
        expected: usize,
        got: usize,
    },
    /// More than `u32::MAX` tokens, or a token longer than `u32::MAX` bytes.
    TooLong,
    /// More than `u16::MAX` alternatives at one position.
    TooManyAlternatives { position: usize },
    /// Impact positions must be strictly increasing and below the token count.
    ImpactPositions,
}

impl std::fmt::Display for TraceShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ColumnLength {
                column,
                expected,
                got,
            } => {
                write!(f, "column {column} has {got} entries, expected {expected}")
            }
            Self::TooLong => write!(f, "trace or token too long for the format"),
            Self::TooManyAlternatives { position } => {
                write!(f, "too many alternatives at position {position}")
            }
            Self::ImpactPositions => write!(
                f,
                "impact positions not strictly increasing within the trace"
            ),
        }
    }
}

impl std::error::Error for TraceShapeError {}

/// The token trace of one rollout. Construction checks the shape, so every value of this type
/// can be encoded and decodes back to itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenTrace {
    tokens: Vec<Vec<u8>>,
    logprobs: Vec<f32>,
    token_ids: Option<Vec<u32>>,
    top_alternatives: Option<Vec<Vec<TopAlternative>>>,
    entropies: Option<Vec<f32>>,
    rbf: Option<Vec<u32>>,
    hidden_norms: Option<Vec<f32>>,
    impacts: Option<Vec<PositionImpact>>,
}

fn check_len(column: &'static str, expected: usize, got: usize) -> Result<(), TraceShapeError> {
    if expected == got {
        Ok(())
    } else {
        Err(TraceShapeError::ColumnLength {
            column,
            expected,
            got,
        })
    }
}

impl TokenTrace {
    /// A trace of tokens (raw bytes) and their chosen-token log-probabilities.
    pub fn new(tokens: Vec<Vec<u8>>, logprobs: Vec<f32>) -> Result<Self, TraceShapeError> {
        check_len("logprobs", tokens.len(), logprobs.len())?;
        if u32::try_from(tokens.len()).is_err()
            || tokens.iter().any(|t| u32::try_from(t.len()).is_err())
        {
            return Err(TraceShapeError::TooLong);
        }
        Ok(Self {
            tokens,
            logprobs,
            ..Self::default()
        })
    }

    /// Adds the token ids (one per token).
    pub fn with_token_ids(mut self, ids: Vec<u32>) -> Result<Self, TraceShapeError> {
        check_len("token_ids", self.len(), ids.len())?;
        self.token_ids = Some(ids);
        Ok(self)
    }

    /// Adds the top-K alternatives (one list per token; lists may be empty).
    pub fn with_top_alternatives(
        mut self,
        alts: Vec<Vec<TopAlternative>>,
    ) -> Result<Self, TraceShapeError> {
        check_len("top_alternatives", self.len(), alts.len())?;
        for (position, list) in alts.iter().enumerate() {
            if list.len() > u16::MAX as usize {
                return Err(TraceShapeError::TooManyAlternatives { position });
            }
            if list.iter().any(|a| u32::try_from(a.token.len()).is_err()) {
                return Err(TraceShapeError::TooLong);
            }
        }
        if u32::try_from(alts.iter().map(Vec::len).sum::<usize>()).is_err() {
            return Err(TraceShapeError::TooLong);
        }
        self.top_alternatives = Some(alts);
        Ok(self)
    }

    /// Adds exact per-token entropies (nats), known when the full distribution was.
    pub fn with_entropies(mut self, entropies: Vec<f32>) -> Result<Self, TraceShapeError> {
        check_len("entropies", self.len(), entropies.len())?;
        self.entropies = Some(entropies);
        Ok(self)
    }

    /// Adds exact per-token rollout branching factors.
    pub fn with_rbf(mut self, rbf: Vec<u32>) -> Result<Self, TraceShapeError> {
        check_len("rbf", self.len(), rbf.len())?;
        self.rbf = Some(rbf);
        Ok(self)
    }

    /// Adds per-token hidden-state norms ||h||.
    pub fn with_hidden_norms(mut self, norms: Vec<f32>) -> Result<Self, TraceShapeError> {
        check_len("hidden_norms", self.len(), norms.len())?;
        self.hidden_norms = Some(norms);
        Ok(self)
    }

    /// Adds intervention impacts at some positions (strictly increasing, each below `len()`).
    pub fn with_impacts(mut self, impacts: Vec<PositionImpact>) -> Result<Self, TraceShapeError> {
        let increasing = impacts.windows(2).all(|w| w[0].position < w[1].position);
        let in_range = impacts
            .last()
            .is_none_or(|i| (i.position as usize) < self.len());
        if !increasing || !in_range {
            return Err(TraceShapeError::ImpactPositions);
        }
        self.impacts = Some(impacts);
        Ok(self)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True for a trace without tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[Vec<u8>] {
        &self.tokens
    }

    pub fn logprobs(&self) -> &[f32] {
        &self.logprobs
    }

    pub fn token_ids(&self) -> Option<&[u32]> {
        self.token_ids.as_deref()
    }

    pub fn top_alternatives(&self) -> Option<&[Vec<TopAlternative>]> {
        self.top_alternatives.as_deref()
    }

    pub fn entropies(&self) -> Option<&[f32]> {
        self.entropies.as_deref()
    }

    pub fn rbf(&self) -> Option<&[u32]> {
        self.rbf.as_deref()
    }

    pub fn hidden_norms(&self) -> Option<&[f32]> {
        self.hidden_norms.as_deref()
    }

    pub fn impacts(&self) -> Option<&[PositionImpact]> {
        self.impacts.as_deref()
    }
}

fn put_u16(out: &mut Vec<u8>, x: u16) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

fn put_f32(out: &mut Vec<u8>, x: f32) {
    out.extend_from_slice(&x.to_bits().to_le_bytes());
}

/// Lengths then concatenated bytes of a list of byte strings (lengths fit u32 by construction).
fn put_byte_strings<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a [u8]> + Clone) {
    for s in items.clone() {
        put_u32(out, s.len() as u32);
    }
    for s in items {
        out.extend_from_slice(s);
    }
}

/// Encodes a trace in the version-1 layout of the module doc.
pub fn encode(trace: &TokenTrace) -> Vec<u8> {
    let n = trace.len();
    let mut flags = 0;
    for (present, flag) in [
        (trace.token_ids.is_some(), FLAG_TOKEN_IDS),
        (trace.top_alternatives.is_some(), FLAG_TOP_K),
        (trace.entropies.is_some(), FLAG_ENTROPY),
        (trace.rbf.is_some(), FLAG_RBF),
        (trace.hidden_norms.is_some(), FLAG_HIDDEN_NORM),
        (trace.impacts.is_some(), FLAG_IMPACTS),
    ] {
        if present {
            flags |= flag;
        }
    }
    let token_bytes: usize = trace.tokens.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(12 + n * 12 + token_bytes);
    out.extend_from_slice(&TRACE_MAGIC);
    put_u16(&mut out, TRACE_VERSION);
    put_u16(&mut out, flags);
    put_u32(&mut out, n as u32);
    put_byte_strings(&mut out, trace.tokens.iter().map(Vec::as_slice));
    trace.logprobs.iter().for_each(|&x| put_f32(&mut out, x));
    if let Some(ids) = &trace.token_ids {
        ids.iter().for_each(|&x| put_u32(&mut out, x));
    }
    if let Some(alts) = &trace.top_alternatives {
        alts.iter()
            .for_each(|list| put_u16(&mut out, list.len() as u16));
        put_byte_strings(&mut out, alts.iter().flatten().map(|a| a.token.as_slice()));
        alts.iter()
            .flatten()
            .for_each(|a| put_f32(&mut out, a.logprob));
    }
    if let Some(h) = &trace.entropies {
        h.iter().for_each(|&x| put_f32(&mut out, x));
    }
    if let Some(r) = &trace.rbf {
        r.iter().for_each(|&x| put_u32(&mut out, x));
    }
    if let Some(h) = &trace.hidden_norms {
        h.iter().for_each(|&x| put_f32(&mut out, x));
    }
    if let Some(imp) = &trace.impacts {
        put_u32(&mut out, imp.len() as u32);
        imp.iter().for_each(|i| put_u32(&mut out, i.position));
        imp.iter().for_each(|i| put_f32(&mut out, i.impact));
    }
    out
}

/// Why bytes are not a valid encoded trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceDecodeError {
    /// The input does not start with [`TRACE_MAGIC`].
    BadMagic,
    /// A layout version this build cannot read.
    UnsupportedVersion(u16),
    /// Flag bits this version does not define.
    UnknownFlags(u16),
    /// The input ends before a field that needs `needed` bytes at `offset`.
    UnexpectedEnd { offset: usize, needed: u64 },
    /// Bytes left after the last column.
    TrailingBytes(usize),
    /// The columns decode but do not form a valid trace.
    Shape(TraceShapeError),
}

impl std::fmt::Display for TraceDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not a caplens token trace (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported token-trace version {v}"),
            Self::UnknownFlags(x) => write!(f, "unknown token-trace flags {x:#06x}"),
            Self::UnexpectedEnd { offset, needed } => {
                write!(f, "input ends at {offset}, {needed} more bytes needed")
            }
            Self::TrailingBytes(n) => write!(f, "{n} bytes after the end of the trace"),
            Self::Shape(e) => write!(f, "malformed trace: {e}"),
        }
    }
}

impl std::error::Error for TraceDecodeError {}

impl From<TraceShapeError> for TraceDecodeError {
    fn from(e: TraceShapeError) -> Self {
        Self::Shape(e)
    }
}

/// A bounds-checked cursor over the input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes `count` items of `size` bytes, checking the product against the remaining input
    /// before anything is read or allocated.
    fn take(&mut self, count: u64, size: u64) -> Result<&'a [u8], TraceDecodeError> {
        let needed = count.saturating_mul(size);
        if needed > self.remaining() as u64 {
            return Err(TraceDecodeError::UnexpectedEnd {
                offset: self.pos,
                needed,
            });
        }
        let slice = &self.buf[self.pos..self.pos + needed as usize];
        self.pos += needed as usize;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, TraceDecodeError> {
        let b = self.take(1, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, TraceDecodeError> {
        let b = self.take(1, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u16s(&mut self, count: usize) -> Result<Vec<u16>, TraceDecodeError> {
        Ok(self
            .take(count as u64, 2)?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    fn u32s(&mut self, count: usize) -> Result<Vec<u32>, TraceDecodeError> {
        Ok(self
            .take(count as u64, 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn f32s(&mut self, count: usize) -> Result<Vec<f32>, TraceDecodeError> {
        Ok(self.u32s(count)?.into_iter().map(f32::from_bits).collect())
    }

    /// `count` byte strings: their u32 lengths, then their bytes.
    fn byte_strings(&mut self, count: usize) -> Result<Vec<Vec<u8>>, TraceDecodeError> {
        let lengths = self.u32s(count)?;
        let total: u64 = lengths.iter().map(|&l| l as u64).sum();
        let mut bytes = self.take(total, 1)?;
        Ok(lengths
            .into_iter()
            .map(|l| {
                let (head, tail) = bytes.split_at(l as usize);
                bytes = tail;
                head.to_vec()
            })
            .collect())
    }
}

/// Decodes bytes written by [`encode`]. Never panics; see [`TraceDecodeError`].
pub fn decode(bytes: &[u8]) -> Result<TokenTrace, TraceDecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.take(1, 4).map_err(|_| TraceDecodeError::BadMagic)? != TRACE_MAGIC {
        return Err(TraceDecodeError::BadMagic);
    }
    let version = r.u16()?;
    if version != TRACE_VERSION {
        return Err(TraceDecodeError::UnsupportedVersion(version));
    }
    let flags = r.u16()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(TraceDecodeError::UnknownFlags(flags & !KNOWN_FLAGS));
    }
    let n = r.u32()? as usize;
    let tokens = r.byte_strings(n)?;
    let logprobs = r.f32s(n)?;
    let mut trace = TokenTrace::new(tokens, logprobs)?;
    if flags & FLAG_TOKEN_IDS != 0 {
        trace = trace.with_token_ids(r.u32s(n)?)?;
    }
    if flags & FLAG_TOP_K != 0 {
        let counts = r.u16s(n)?;
        let m: usize = counts.iter().map(|&c| c as usize).sum();
        let alt_tokens = r.byte_strings(m)?;
        let alt_logprobs = r.f32s(m)?;
        let mut flat = alt_tokens
            .into_iter()
            .zip(alt_logprobs)
            .map(|(token, logprob)| TopAlternative { token, logprob });
        let lists = counts
            .iter()
            .map(|&c| flat.by_ref().take(c as usize).collect())
            .collect();
        trace = trace.with_top_alternatives(lists)?;
    }
    if flags & FLAG_ENTROPY != 0 {
        trace = trace.with_entropies(r.f32s(n)?)?;
    }
    if flags & FLAG_RBF != 0 {
        trace = trace.with_rbf(r.u32s(n)?)?;
    }
    if flags & FLAG_HIDDEN_NORM != 0 {
        trace = trace.with_hidden_norms(r.f32s(n)?)?;
    }
    if flags & FLAG_IMPACTS != 0 {
        let c = r.u32()? as usize;
        let positions = r.u32s(c)?;
        let values = r.f32s(c)?;
        let impacts = positions
            .into_iter()
            .zip(values)
            .map(|(position, impact)| PositionImpact { position, impact })
            .collect();
        trace = trace.with_impacts(impacts)?;
    }
    if r.remaining() > 0 {
        return Err(TraceDecodeError::TrailingBytes(r.remaining()));
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TokenTrace {
        TokenTrace::new(
            vec![b"The".to_vec(), vec![0xE4, 0xBD], b" x".to_vec()],
            vec![-0.1, -2.5, -9999.0],
        )
        .unwrap()
        .with_token_ids(vec![785, 12345, 856])
        .unwrap()
        .with_top_alternatives(vec![
            vec![TopAlternative {
                token: b"A".to_vec(),
                logprob: -3.0,
            }],
            vec![],
            vec![
                TopAlternative {
                    token: b" y".to_vec(),
                    logprob: -1.0,
                },
                TopAlternative {
                    token: vec![],
                    logprob: f32::NEG_INFINITY,
                },
            ],
        ])
        .unwrap()
        .with_entropies(vec![0.3, 1.2, 0.0])
        .unwrap()
        .with_rbf(vec![1, 4, 1])
        .unwrap()
        .with_hidden_norms(vec![50.0, 51.5, 49.0])
        .unwrap()
        .with_impacts(vec![
            PositionImpact {
                position: 0,
                impact: 0.25,
            },
            PositionImpact {
                position: 2,
                impact: -0.5,
            },
        ])
        .unwrap()
    }

    #[test]
    fn full_trace_round_trips_and_header_is_as_documented() {
        let t = sample();
        let bytes = encode(&t);
        assert_eq!(&bytes[..4], b"CLTT");
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 1);
        assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 0b11_1111);
        assert_eq!(
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            3
        );
        // Token lengths 3, 2, 2 follow the header, then the 7 token bytes.
        assert_eq!(&bytes[12..16], &3u32.to_le_bytes());
        assert_eq!(&bytes[24..31], b"The\xE4\xBD x");
        assert_eq!(decode(&bytes), Ok(t));
    }

    #[test]
    fn minimal_and_empty_traces_round_trip() {
        let empty = TokenTrace::default();
        let bytes = encode(&empty);
        assert_eq!(bytes.len(), 12);
        assert_eq!(decode(&bytes), Ok(empty));
        let t = TokenTrace::new(vec![b"a".to_vec()], vec![-1.0]).unwrap();
        // 12 header + 4 length + 1 byte + 4 logprob
        assert_eq!(encode(&t).len(), 21);
        assert_eq!(decode(&encode(&t)), Ok(t));
    }

    #[test]
    fn shape_errors_at_construction() {
        assert!(matches!(
            TokenTrace::new(vec![vec![]], vec![]),
            Err(TraceShapeError::ColumnLength { .. })
        ));
        let t = TokenTrace::new(vec![vec![1], vec![2]], vec![0.0, 0.0]).unwrap();
        assert!(matches!(
            t.clone().with_rbf(vec![1]),
            Err(TraceShapeError::ColumnLength { column: "rbf", .. })
        ));
        let imp = |p| PositionImpact {
            position: p,
            impact: 0.0,
        };
        assert_eq!(
            t.clone().with_impacts(vec![imp(1), imp(1)]),
            Err(TraceShapeError::ImpactPositions)
        );
        assert_eq!(
            t.clone().with_impacts(vec![imp(2)]),
            Err(TraceShapeError::ImpactPositions)
        );
        assert!(t.with_impacts(vec![]).is_ok());
    }

    #[test]
    fn decode_rejects_corruption_with_specific_errors() {
        let bytes = encode(&sample());
        assert_eq!(decode(b""), Err(TraceDecodeError::BadMagic));
        assert_eq!(
            decode(b"CLTX\x01\x00\x00\x00"),
            Err(TraceDecodeError::BadMagic)
        );
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(decode(&v2), Err(TraceDecodeError::UnsupportedVersion(2)));
        let mut flags = bytes.clone();
        flags[7] = 0x80;
        assert_eq!(decode(&flags), Err(TraceDecodeError::UnknownFlags(0x8000)));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(TraceDecodeError::TrailingBytes(1)));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(TraceDecodeError::UnexpectedEnd { .. })
        ));
        // A huge token count is refused before allocating.
        let mut huge = bytes[..8].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge),
            Err(TraceDecodeError::UnexpectedEnd { .. })
        ));
        // Unordered impact positions are caught after decoding the column.
        let t = TokenTrace::new(vec![vec![1], vec![2]], vec![0.0, 0.0])
            .unwrap()
            .with_impacts(vec![
                PositionImpact {
                    position: 0,
                    impact: 0.0,
                },
                PositionImpact {
                    position: 1,
                    impact: 0.0,
                },
            ])
            .unwrap();
        let mut b = encode(&t);
        let at = b.len() - 16; // first of the two positions
        b[at] = 1;
        assert_eq!(
            decode(&b),
            Err(TraceDecodeError::Shape(TraceShapeError::ImpactPositions))
        );
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..6)
    }

    prop_compose! {
        fn trace(finite: bool)(n in 0usize..12)(
            n in Just(n),
            tokens in prop::collection::vec(bytes(), n),
            logprobs in prop::collection::vec(if finite { (-30.0f32..0.0).boxed() } else { any::<f32>().boxed() }, n),
            ids in prop::option::of(prop::collection::vec(any::<u32>(), n)),
            alts in prop::option::of(prop::collection::vec(prop::collection::vec((bytes(), -30.0f32..0.0), 0..4), n)),
            entropies in prop::option::of(prop::collection::vec(0.0f32..12.0, n)),
            rbf in prop::option::of(prop::collection::vec(1u32..1000, n)),
            norms in prop::option::of(prop::collection::vec(0.0f32..100.0, n)),
            impacts in prop::option::of(prop::collection::btree_map(0u32..(n.max(1) as u32), -1.0f32..=1.0, 0..4)),
        ) -> TokenTrace {
            let mut t = TokenTrace::new(tokens, logprobs).unwrap();
            if let Some(ids) = ids { t = t.with_token_ids(ids).unwrap(); }
            if let Some(alts) = alts {
                let lists = alts.into_iter().map(|l| l.into_iter().map(|(token, logprob)| TopAlternative { token, logprob }).collect()).collect();
                t = t.with_top_alternatives(lists).unwrap();
            }
            if let Some(h) = entropies { t = t.with_entropies(h).unwrap(); }
            if let Some(r) = rbf { t = t.with_rbf(r).unwrap(); }
            if let Some(h) = norms { t = t.with_hidden_norms(h).unwrap(); }
            if let Some(imp) = impacts {
                let list: Vec<_> = imp.into_iter().filter(|(p, _)| (*p as usize) < n).map(|(position, impact)| PositionImpact { position, impact }).collect();
                t = t.with_impacts(list).unwrap();
            }
            t
        }
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(t in trace(true)) {
            prop_assert_eq!(decode(&encode(&t)), Ok(t));
        }

        #[test]
        fn floats_round_trip_bit_exactly(t in trace(false)) {
            let bytes = encode(&t);
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(encode(&back), bytes);
            let same_bits = back.logprobs().iter().zip(t.logprobs()).all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same_bits);
        }

        #[test]
        fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&b);
        }

        #[test]
        fn random_bytes_after_a_valid_header_never_panic(flags in 0u16..64, b in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut input = b"CLTT\x01\x00".to_vec();
            input.extend_from_slice(&flags.to_le_bytes());
            input.extend_from_slice(&b);
            let _ = decode(&input);
        }

        #[test]
        fn mutated_encodings_never_panic(t in trace(true), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let original = encode(&t);
            let mut b = original.clone();
            let i = at.index(b.len());
            b[i] = byte;
            let _ = decode(&b);
            // Every proper prefix of a valid encoding is an error (the columns are length-checked).
            let keep = cut.index(original.len());
            prop_assert!(decode(&original[..keep]).is_err());
        }
    }
}
