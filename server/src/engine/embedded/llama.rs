//! A Llama-architecture forward pass over F32 weights, written with candle's tensor ops (ours,
//! not candle's `quantized_llama`), because it gives what that one cannot:
//! - the final normed hidden state `h` (whose norm is the gradient-norm proxy's `||h||`,
//!   paper eq. 4), not only the logits;
//! - a KV cache we own: the prompt is prefilled once (batch 1) and its cache copied to every row,
//!   finished rows are dropped from the batch, and the cache grows in place (`slice_set`) instead
//!   of being concatenated anew at every step;
//! - dequantisation as a parameter (`QTensor::dequantize`), not an environment variable.
//!
//! Tensor names and layouts are llama.cpp's GGUF ones: weights are `[out, in]`, Q and K are
//! stored for interleaved rotary embeddings, the output matrix is tied to the embeddings when
//! the file has no `output.weight`. Grouped-query attention runs without copying K and V: the
//! query heads of one KV head are stacked along the sequence axis.

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Result, Tensor, D};

struct Layer {
    attn_norm: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

pub(super) struct Llama {
    embeddings: Tensor,
    output: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// Per layer, keys and values `[rows, n_kv_head, capacity, head_dim]`; the first `len`
/// positions are filled.
pub(super) struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

/// Capacity grows in steps of this many positions.
const CACHE_STEP: usize = 256;

fn md_usize(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    match ct.metadata.get(key) {
        Some(v) => Ok(v.to_u64()? as usize),
        None => candle_core::bail!("the GGUF metadata has no {key}"),
    }
}

fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

/// `x [n, in] · wᵀ` for `w [out, in]`.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.matmul(&w.t()?)
}

impl Llama {
    pub(super) fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        max_len: usize,
    ) -> Result<Self> {
        let device = Device::Cpu;
        let mut load = |name: &str| -> Result<Tensor> {
            ct.tensor(reader, name, &device)?.dequantize(&device)
        };
        let embeddings = load("token_embd.weight")?;
        let norm = load("output_norm.weight")?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            load("output.weight")?
        } else {
            embeddings.clone()
        };
        let n_layer = md_usize(ct, "llama.block_count")?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let mut l = |what: &str| load(&format!("blk.{i}.{what}.weight"));
            layers.push(Layer {
                attn_norm: l("attn_norm")?,
                wq: l("attn_q")?,
                wk: l("attn_k")?,
                wv: l("attn_v")?,
                wo: l("attn_output")?,
                ffn_norm: l("ffn_norm")?,
                w_gate: l("ffn_gate")?,
                w_up: l("ffn_up")?,
                w_down: l("ffn_down")?,
            });
        }
        let n_head = md_usize(ct, "llama.attention.head_count")?;
        let n_kv_head = md_usize(ct, "llama.attention.head_count_kv")?;
        let dim = md_usize(ct, "llama.embedding_length")?;
        let head_dim = dim / n_head;
        let eps = md_f32(ct, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
        let base = md_f32(ct, "llama.rope.freq_base").unwrap_or(10_000.0);
        if n_head % n_kv_head != 0 || head_dim % 2 != 0 {
            candle_core::bail!("unsupported attention shape: {n_head} heads, {n_kv_head} KV heads, dimension {dim}")
        }
        // Rotary tables: angle(p, i) = p / base^(2i / head_dim).
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_len * half);
        let mut sin = Vec::with_capacity(max_len * half);
        for p in 0..max_len {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Llama {
            embeddings,
            output,
            layers,
            norm,
            n_head,
            n_kv_head,
            head_dim,
            eps,
            cos: Tensor::from_vec(cos, (max_len, half), &device)?,
            sin: Tensor::from_vec(sin, (max_len, half), &device)?,
            device,
        })
    }

    /// Bytes of KV cache one row needs per position (keys and values of every layer).
    pub(super) fn kv_bytes_per_position(&self) -> usize {
        self.layers.len() * 2 * self.n_kv_head * self.head_dim * std::mem::size_of::<f32>()
    }

    pub(super) fn new_cache(&self) -> KvCache {
        KvCache {
            k: Vec::new(),
            v: Vec::new(),
            len: 0,
            capacity: 0,
        }
    }

    /// Runs `ids [rows, t]` after the cached positions; returns the logits `[rows, V]` of
    /// the last position and the L2 norm of its final normed hidden state, per row.
    pub(super) fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<(Tensor, Vec<f32>)> {
        let x = self.residual(ids, cache)?;
        let (rows, t, dim) = x.dims3()?;
        let last = x.narrow(1, t - 1, 1)?.reshape((rows, dim))?;
        let h = candle_nn::ops::rms_norm(&last, &self.norm, self.eps)?;
        let norms = h
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok((linear(&h, &self.output)?, norms))
    }

    /// The final normed hidden state `[t, dim]` of every position of one sequence (a fresh
    /// cache): what scoring a text needs. Turn it into logits with [`Self::logits`], a
    /// slice of positions at a time (all positions at once would be `t × V` floats).
    pub(super) fn hidden_states(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let x = self.residual(&ids, &mut self.new_cache())?;
        let (_, t, dim) = x.dims3()?;
        candle_nn::ops::rms_norm(&x.reshape((t, dim))?, &self.norm, self.eps)
    }

    /// Logits `[n, V]` of normed hidden states `h [n, dim]`.
    pub(super) fn logits(&self, h: &Tensor) -> Result<Tensor> {
        linear(h, &self.output)
    }

    /// The transformer layers over `ids [rows, t]` after the cached positions: the residual
    /// stream `[rows, t, dim]` before the final norm.
    fn residual(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (rows, t) = ids.dims2()?;
        let dim = self.n_head * self.head_dim;
        let pos = cache.len;
        if pos + t > self.cos.dim(0)? {
            candle_core::bail!("sequence longer than {} positions", self.cos.dim(0)?)
        }
        self.reserve(cache, rows, pos + t)?;
        let rep = self.n_head / self.n_kv_head;
        let cos = self.cos.narrow(0, pos, t)?;
        let sin = self.sin.narrow(0, pos, t)?;
        let mask = if t > 1 {
            Some(self.causal_mask(t, pos, rep)?)
        } else {
            None
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut x = self
            .embeddings
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((rows, t, dim))?;
        for (li, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.eps)?
                .reshape((rows * t, dim))?;
            let heads = |w: &Tensor, n: usize| -> Result<Tensor> {
                linear(&h, w)?
                    .reshape((rows, t, n, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = candle_nn::rotary_emb::rope_i(&heads(&layer.wq, self.n_head)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&heads(&layer.wk, self.n_kv_head)?, &cos, &sin)?;
            let v = heads(&layer.wv, self.n_kv_head)?;
            cache.k[li].slice_set(&k, 2, pos)?;
            cache.v[li].slice_set(&v, 2, pos)?;
            let keys = cache.k[li].narrow(2, 0, pos + t)?;
            let values = cache.v[li].narrow(2, 0, pos + t)?;
            // The `rep` query heads sharing a KV head, stacked: [rows, n_kv, rep * t, hd].
            let q = q.reshape((rows, self.n_kv_head, rep * t, self.head_dim))?;
            let mut att = (q.matmul(&keys.t()?)? * scale)?;
            if let Some(mask) = &mask {
                att = att.broadcast_add(mask)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let out = att
                .matmul(&values)?
                .reshape((rows, self.n_head, t, self.head_dim))?
                .transpose(1, 2)?
                .reshape((rows * t, dim))?;
            x = (x + linear(&out, &layer.wo)?.reshape((rows, t, dim))?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.eps)?
                .reshape((rows * t, dim))?;
            let gate = candle_nn::ops::silu(&linear(&h, &layer.w_gate)?)?;
            let mlp = linear(&(gate * linear(&h, &layer.w_up)?)?, &layer.w_down)?;
            x = (x + mlp.reshape((rows, t, dim))?)?;
        }
        cache.len = pos + t;
        Ok(x)
    }

    /// Additive causal mask for `t` queries after `pos` cached positions, repeated for the
    /// `rep` stacked query heads: `[rep * t, pos + t]`, 0 where attending, -inf elsewhere.
    fn causal_mask(&self, t: usize, pos: usize, rep: usize) -> Result<Tensor> {
        let width = pos + t;
        let mut mask = Vec::with_capacity(rep * t * width);
        for _ in 0..rep {
            for i in 0..t {
                mask.extend((0..width).map(|j| {
                    if j <= pos + i {
                        0f32
                    } else {
                        f32::NEG_INFINITY
                    }
                }));
            }
        }
        Tensor::from_vec(mask, (rep * t, width), &self.device)
    }

    /// Makes room for `needed` positions of `rows` rows (a fresh cache, or a larger one
    /// holding the filled positions).
    fn reserve(&self, cache: &mut KvCache, rows: usize, needed: usize) -> Result<()> {
        if cache.k.is_empty() || needed > cache.capacity {
            let capacity = needed.div_ceil(CACHE_STEP) * CACHE_STEP;
            let shape = (rows, self.n_kv_head, capacity, self.head_dim);
            let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                let new = Tensor::zeros(shape, DType::F32, &self.device)?;
                if let (Some(old), true) = (old, cache.len > 0) {
                    new.slice_set(&old.narrow(2, 0, cache.len)?.contiguous()?, 2, 0)?;
                }
                Ok(new)
            };
            let n = self.layers.len();
            let k = (0..n)
                .map(|i| grow(cache.k.get(i)))
                .collect::<Result<Vec<_>>>()?;
            let v = (0..n)
                .map(|i| grow(cache.v.get(i)))
                .collect::<Result<Vec<_>>>()?;
            cache.k = k;
            cache.v = v;
            cache.capacity = capacity;
        }
        Ok(())
    }
}

impl KvCache {
    /// Keeps the rows `rows` (indices into the current rows, repeats allowed), in order:
    /// copies the prompt's row to every sample, and drops finished samples.
    pub(super) fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        if self.k.is_empty() {
            return Ok(());
        }
        let device = self.k[0].device().clone();
        let index = Tensor::new(rows, &device)?;
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(&index, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::engine::embedded::tests::{chat, engine, greedy, request};
    use crate::engine::embedded::{render_chat, EmbeddedEngine};
    use crate::engine::{ChatMessage, Engine, SamplingParams};

    #[test]
    fn forward_pass_matches_candles_llama_and_gives_hidden_norms() {
        use candle_transformers::models::quantized_llama::ModelWeights;
        // Reference: candle's own Llama, weights dequantised to F32 through its
        // CANDLE_DEQUANTIZE_ALL switch (a thread-local read at first use: set it, then load on a
        // fresh thread).
        std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
        let path = EmbeddedEngine::default_model_path();
        let mut reference = std::thread::spawn(move || {
            let mut f = File::open(&path).unwrap();
            let ct = gguf_file::Content::read(&mut f).unwrap();
            ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap()
        })
        .join()
        .unwrap();
        let e = engine();
        let model = e.model.lock().unwrap();
        let prompt = e
            .tokenizer()
            .encode(&render_chat(
                &[ChatMessage {
                    role: "user".into(),
                    content: "What is 2+3?".into(),
                }],
                true,
            ))
            .unwrap();
        let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected = reference.forward(&x, 0).unwrap();
        let mut cache = model.new_cache();
        let (logits, norms) = model.forward(&x, &mut cache).unwrap();
        assert!(max_diff(&logits, &expected) < 1e-3, "prefill");
        assert_eq!(norms.len(), 1);
        assert!(norms[0].is_finite() && norms[0] > 0.0, "{norms:?}");
        // Decode steps, two identical rows in our batch.
        cache.select_rows(&[0, 0]).unwrap();
        let mut token = expected.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        for pos in prompt.len()..prompt.len() + 3 {
            let one = Tensor::new(&[[token]], &Device::Cpu).unwrap();
            let expected = reference.forward(&one, pos).unwrap();
            let two = Tensor::new(&[[token], [token]], &Device::Cpu).unwrap();
            let (logits, norms) = model.forward(&two, &mut cache).unwrap();
            for r in 0..2 {
                let row = logits.narrow(0, r, 1).unwrap();
                assert!(max_diff(&row, &expected) < 1e-3, "decode at {pos}, row {r}");
            }
            assert_eq!(norms.len(), 2);
            token = expected.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        }
        drop(model);
        // And the engine reports the norms.
        let g = e
            .generate(&request(
                chat("Hi"),
                1,
                SamplingParams {
                    top_logprobs: Some(1),
                    ..greedy(3)
                },
            ))
            .unwrap();
        for s in g.completions[0].tokens.as_ref().unwrap() {
            let h = s.hidden_norm.expect("hidden norm");
            assert!(h.is_finite() && h > 0.0, "{s:?}");
        }
    }
}
