//! The token heatmap's pure parts, shared by the server (which builds the data) and the page
//! (which draws it): the metrics, their colour scale, the compact columns sent to the browser,
//! token text shown safely, and the HTML of one chunk of tokens.
//!
//! # Why chunks of HTML
//! A 32k-token response is 32k coloured spans. Hydrating 32k Leptos nodes would freeze the
//! browser, so the tokens are drawn as blocks of [`CHUNK`] tokens, each block one `inner_html`
//! string built here: a span per token carrying only its colour class, every token's text escaped
//! by [`crate::escape::escape_into`]. The hover card reads the token's index from its place in its
//! block (`data-start`), through one listener on the container. Tests prove hostile token text is
//! inert.

use serde::{Deserialize, Serialize};

/// Tokens per rendered block.
pub const CHUNK: usize = 512;
/// Colour classes `h0` (low) .. `h8` (high); `hn` for a token without a value.
pub const BUCKETS: usize = 9;

/// What the heatmap colours tokens by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Token entropy H_t (eq. 3), nats.
    Entropy,
    /// Rollout branching factor: tokens in the top-p 0.95 nucleus (sec. 2.2).
    Rbf,
    /// Log-probability of the chosen token.
    Logprob,
    /// Intervention impact I_t (eq. 6).
    Impact,
    /// Gradient-norm proxy G_t (eq. 4).
    GradNorm,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Entropy,
        Metric::Rbf,
        Metric::Logprob,
        Metric::Impact,
        Metric::GradNorm,
    ];

    /// The URL value (`metric=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Entropy => "entropy",
            Metric::Rbf => "rbf",
            Metric::Logprob => "logprob",
            Metric::Impact => "impact",
            Metric::GradNorm => "gradnorm",
        }
    }

    /// Parses `metric=`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Metric::Entropy => "Entropy",
            Metric::Rbf => "RBF",
            Metric::Logprob => "Log-probability",
            Metric::Impact => "Intervention impact",
            Metric::GradNorm => "Gradient-norm proxy",
        }
    }

    /// What the numbers mean, for the legend.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Entropy => "token entropy H_t in nats (eq. 3)",
            Metric::Rbf => "tokens in the top-p 0.95 nucleus (rollout branching factor)",
            Metric::Logprob => "ln p of the chosen token, nats (darker = less likely)",
            Metric::Impact => {
                "I_t = accuracy with the token − accuracy with the substitute (eq. 6)"
            }
            Metric::GradNorm => "G_t = |α_t|·‖e(o_t) − p‖·‖h‖ (eq. 4), per unit |α_t|",
        }
    }

    /// Whether low values are the hot end of the colour scale.
    pub fn low_is_hot(self) -> bool {
        self == Metric::Logprob
    }
}

/// A column of f32 values sent to the browser as base64 of little-endian bytes: a third of the
/// size of JSON numbers, exact, and NaN (= no value) survives.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct F32Column(pub Vec<f32>);

impl Serialize for F32Column {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.0.len() * 4);
        for x in &self.0 {
            bytes.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        s.serialize_str(&base64_encode(&bytes))
    }
}

impl<'de> Deserialize<'de> for F32Column {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64_decode(&text)
            .ok_or_else(|| serde::de::Error::custom("invalid base64 in a float column"))?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom("float column of a partial length"));
        }
        Ok(F32Column(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_bits(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
        ))
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    for (i, quad) in t.chunks(4).enumerate() {
        let last = i == t.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// The value range the colours span. Values outside are clamped to the end colours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeatScale {
    pub lo: f64,
    pub hi: f64,
    pub low_is_hot: bool,
    /// Some value lies above `hi` (or below `lo` for a low-is-hot metric): the legend says "≥".
    pub clamped: bool,
}

impl HeatScale {
    /// The scale of a metric over a rollout's values: from the metric's natural zero to the
    /// 99th percentile (so one outlier does not wash out the rest); intervention impact has the
    /// fixed range [-1, 1].
    pub fn for_values(metric: Metric, values: &[f32]) -> HeatScale {
        let mut finite: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| v as f64)
            .collect();
        finite.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        let quantile = |q: f64| -> Option<f64> {
            (!finite.is_empty()).then(|| finite[((finite.len() - 1) as f64 * q).round() as usize])
        };
        let (lo, hi) = match metric {
            Metric::Impact => (-1.0, 1.0),
            Metric::Logprob => (quantile(0.01).unwrap_or(-1.0).min(-0.1), 0.0),
            Metric::Rbf => (1.0, quantile(0.99).unwrap_or(2.0).max(2.0)),
            Metric::Entropy | Metric::GradNorm => (0.0, quantile(0.99).unwrap_or(0.1).max(0.1)),
        };
        let clamped = match metric {
            Metric::Logprob => finite.first().is_some_and(|&v| v < lo),
            _ => finite.last().is_some_and(|&v| v > hi),
        };
        HeatScale {
            lo,
            hi,
            low_is_hot: metric.low_is_hot(),
            clamped,
        }
    }

    /// The colour bucket 0..BUCKETS-1 of a value (0 = cool), `None` for NaN.
    pub fn bucket(&self, v: f32) -> Option<usize> {
        if v.is_nan() {
            return None;
        }
        let span = self.hi - self.lo;
        let mut t = if span > 0.0 {
            ((v as f64 - self.lo) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        if self.low_is_hot {
            t = 1.0 - t;
        }
        Some(((t * BUCKETS as f64) as usize).min(BUCKETS - 1))
    }

    /// The legend: the value at the start of each colour bucket, cool to hot.
    pub fn stops(&self) -> Vec<f64> {
        (0..BUCKETS)
            .map(|i| {
                let t = i as f64 / BUCKETS as f64;
                let t = if self.low_is_hot { 1.0 - t } else { t };
                self.lo + t * (self.hi - self.lo)
            })
            .collect()
    }
}

/// Everything the page needs to draw one rollout's tokens for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHeatmap {
    pub metric: Metric,
    /// Metrics this trace can show (the others need columns it does not have).
    pub available: Vec<Metric>,
    /// Token text for display ([`token_display`]).
    pub tokens: Vec<String>,
    /// The metric per token; NaN where it has no value.
    pub values: F32Column,
    /// Chosen-token log-probabilities (NaN where unknown).
    pub logprobs: F32Column,
    pub scale: HeatScale,
    /// Some values are estimates from the top-K log-probabilities (lower bounds for entropy and
    /// RBF, an upper bound for the gradient-norm proxy), not exact columns.
    pub truncated: bool,
    /// Tokens with a value.
    pub with_value: usize,
    /// Extra words for the legend (e.g. "‖h‖ not in the trace").
    pub note: Option<String>,
    /// Per-response numbers recomputed from the trace.
    pub summary: TraceSummary,
}

/// Per-response numbers of a trace (the same rules as the stored rollout means).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TraceSummary {
    pub tokens: usize,
    pub perplexity: Option<f64>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    /// Tokens whose entropy or RBF is a truncated top-K bound.
    pub truncated_tokens: usize,
}

/// A metric value with whether it is exact or an estimate from top-K log-probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    pub value: f64,
    pub exact: bool,
}

/// One alternative of a token: its text and log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub token: String,
    pub logprob: f64,
}

/// Everything known about one token position (the hover card, the `pos=` permalink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenDetail {
    pub pos: usize,
    pub token: String,
    pub logprob: Option<f64>,
    pub alternatives: Vec<Alternative>,
    /// `1 - sum(top-K)`, when alternatives were stored.
    pub missing_mass: Option<f64>,
    pub entropy: Option<MetricValue>,
    pub rbf: Option<MetricValue>,
    pub impact: Option<f64>,
    pub gradnorm: Option<MetricValue>,
    pub hidden_norm: Option<f64>,
}

impl TokenDetail {
    pub fn value(&self, metric: Metric) -> Option<MetricValue> {
        let exact = |v: Option<f64>| v.map(|value| MetricValue { value, exact: true });
        match metric {
            Metric::Entropy => self.entropy,
            Metric::Rbf => self.rbf,
            Metric::Logprob => exact(self.logprob),
            Metric::Impact => exact(self.impact),
            Metric::GradNorm => self.gradnorm,
        }
    }
}

/// A token's bytes as display text: valid UTF-8 as is, invalid bytes as `\xNN`, control
/// characters as `\u{NN}`, a newline as `↵` followed by the line break.
pub fn token_display(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("↵\n"),
                '\t' => out.push('\t'),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Formats a metric value for the legend and the card.
pub fn fmt_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Rbf if v.fract() == 0.0 => format!("{v:.0}"),
        _ if v.abs() >= 100.0 => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    }
}

/// The HTML of tokens `start..end` (one block): `<span class=hK>text</span>` per token, the
/// token at `selected` marked. Token text is escaped; class names are constants.
pub fn chunk_html(
    tokens: &[String],
    values: &[f32],
    scale: &HeatScale,
    colour: bool,
    start: usize,
    end: usize,
    selected: Option<usize>,
) -> String {
    const CLASSES: [&str; BUCKETS] = ["h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"];
    let end = end.min(tokens.len());
    let mut out = String::with_capacity((end.saturating_sub(start)) * 24);
    for (i, token) in tokens.iter().enumerate().take(end).skip(start) {
        let class = match (colour, values.get(i).and_then(|&v| scale.bucket(v))) {
            (true, Some(b)) => CLASSES[b],
            _ => "hn",
        };
        out.push_str("<span class=\"");
        out.push_str(class);
        if selected == Some(i) {
            out.push_str(" sel\" id=\"sel-token");
        }
        out.push_str("\">");
        crate::escape::escape_into(&mut out, token);
        out.push_str("</span>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip_through_the_url() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
        }
        assert_eq!(Metric::parse("Entropy"), None);
        assert_eq!(Metric::parse(""), None);
    }

    #[test]
    fn float_columns_survive_serde_exactly_including_nan() {
        let col = F32Column(vec![0.0, -1.5, f32::NAN, 1e-30, f32::INFINITY, 3.25]);
        let json = serde_json::to_string(&col).unwrap();
        let back: F32Column = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0.len(), 6);
        for (a, b) in col.0.iter().zip(&back.0) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        for n in 0..8 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 1) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert!(base64_decode("TW=u").is_none());
        assert!(base64_decode("T").is_none());
        assert!(
            serde_json::from_str::<F32Column>("\"TWE=\"").is_err(),
            "3 bytes is no float"
        );
    }

    #[test]
    fn buckets_cover_the_scale_cool_to_hot() {
        let s = HeatScale {
            lo: 0.0,
            hi: 2.0,
            low_is_hot: false,
            clamped: false,
        };
        assert_eq!(s.bucket(0.0), Some(0));
        assert_eq!(s.bucket(-5.0), Some(0));
        assert_eq!(s.bucket(1.0), Some(4));
        assert_eq!(s.bucket(1.99), Some(8));
        assert_eq!(s.bucket(2.0), Some(8));
        assert_eq!(s.bucket(50.0), Some(8));
        assert_eq!(s.bucket(f32::NAN), None);
        // Monotone.
        let mut last = 0;
        for i in 0..=200 {
            let b = s.bucket(i as f32 / 100.0).unwrap();
            assert!(b >= last);
            last = b;
        }
        // Log-probabilities: the unlikely end is hot.
        let lp = HeatScale {
            lo: -4.0,
            hi: 0.0,
            low_is_hot: true,
            clamped: false,
        };
        assert_eq!(lp.bucket(0.0), Some(0));
        assert_eq!(lp.bucket(-4.0), Some(8));
        assert_eq!(lp.bucket(-10.0), Some(8));
        // The legend's stops fall in their own bucket.
        for scale in [s, lp] {
            for (i, stop) in scale.stops().iter().enumerate() {
                let nudge = if scale.low_is_hot { -1e-6 } else { 1e-6 };
                assert_eq!(scale.bucket((*stop + nudge) as f32), Some(i), "{scale:?}");
            }
        }
        let flat = HeatScale {
            lo: 1.0,
            hi: 1.0,
            low_is_hot: false,
            clamped: false,
        };
        assert_eq!(
            flat.bucket(1.0),
            Some(0),
            "an empty range does not divide by zero"
        );
    }

    #[test]
    fn scales_follow_the_metric() {
        let values: Vec<f32> = (0..1000)
            .map(|i| i as f32 / 1000.0)
            .chain([100.0])
            .collect();
        let s = HeatScale::for_values(Metric::Entropy, &values);
        assert_eq!(s.lo, 0.0);
        assert!(
            s.hi < 1.0 && s.hi > 0.95,
            "99th percentile, not the outlier: {s:?}"
        );
        assert!(s.clamped);
        let s = HeatScale::for_values(Metric::Impact, &[0.1, f32::NAN]);
        assert_eq!((s.lo, s.hi), (-1.0, 1.0));
        let s = HeatScale::for_values(Metric::Logprob, &[-0.1, -3.0, 0.0]);
        assert!(s.low_is_hot && s.hi == 0.0 && s.lo <= -3.0);
        let s = HeatScale::for_values(Metric::Rbf, &[1.0, 1.0]);
        assert_eq!((s.lo, s.hi), (1.0, 2.0));
        let s = HeatScale::for_values(Metric::Entropy, &[f32::NAN]);
        assert!(s.hi > s.lo, "no value still gives a usable scale");
    }

    #[test]
    fn token_bytes_display_safely() {
        assert_eq!(token_display(b" the"), " the");
        assert_eq!(
            token_display(b"\xE2\x88"),
            "\\xE2\\x88",
            "a cut UTF-8 sequence"
        );
        assert_eq!(token_display("é".as_bytes()), "é");
        assert_eq!(token_display(b"a\xFFb"), "a\\xFFb");
        assert_eq!(token_display(b"\n"), "↵\n");
        assert_eq!(token_display(b"\x00\x1b"), "\\u{0}\\u{1b}");
    }

    #[test]
    fn chunk_html_escapes_token_text() {
        let tokens: Vec<String> = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\" onmouseover=\"x",
            "&amp;",
            "ok",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let values = vec![0.0, 1.0, f32::NAN, 2.0, 0.5];
        let scale = HeatScale {
            lo: 0.0,
            hi: 2.0,
            low_is_hot: false,
            clamped: false,
        };
        let html = chunk_html(&tokens, &values, &scale, true, 0, 5, Some(4));
        assert_eq!(html.matches("<span").count(), 5);
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot; onmouseover=&quot;x"));
        assert!(html.contains("&amp;amp;"));
        assert!(html.contains("<span class=\"h0\">&lt;script"));
        assert!(
            html.contains("<span class=\"hn\">&quot;"),
            "NaN has no colour"
        );
        assert!(html.contains("<span class=\"h2 sel\" id=\"sel-token\">ok</span>"));
        // Every `<` is one of our spans.
        for (i, _) in html.match_indices('<') {
            assert!(html[i..].starts_with("<span class=\"h") || html[i..].starts_with("</span>"));
        }
        let plain = chunk_html(&tokens, &values, &scale, false, 3, 99, None);
        assert_eq!(
            plain,
            "<span class=\"hn\">&amp;amp;</span><span class=\"hn\">ok</span>"
        );
    }
}
