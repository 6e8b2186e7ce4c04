//! SmolLM2's text side: the byte-level BPE tokenizer built from the GGUF metadata
//! ([`GgufTokenizer`]) and the ChatML chat template ([`render_chat`]) that turns chat messages
//! into the text the model sees. Kept apart from the engine because both are pure text work: no
//! model weights, no sampling.

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;

use super::DEFAULT_SYSTEM_MESSAGE;
use crate::engine::{ChatMessage, EngineError};

/// SmolLM2's chat template (the GGUF's `tokenizer.chat_template`), rendered without a template
/// engine: when the first message is not a system message, the default system message
/// ([`DEFAULT_SYSTEM_MESSAGE`]) comes first; every message is
/// `<|im_start|>{role}\n{content}<|im_end|>\n`; the generation prompt is
/// `<|im_start|>assistant\n`.
pub fn render_chat(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    if messages.first().is_some_and(|m| m.role != "system") {
        out.push_str("<|im_start|>system\n");
        out.push_str(DEFAULT_SYSTEM_MESSAGE);
        out.push_str("<|im_end|>\n");
    }
    for m in messages {
        out.push_str("<|im_start|>");
        out.push_str(&m.role);
        out.push('\n');
        out.push_str(&m.content);
        out.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

/// The byte-level BPE tokenizer of a GGUF file (GPT-2 style, as SmolLM2's).
pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    /// The bytes each token stands for (special tokens: their literal text).
    token_bytes: Vec<Vec<u8>>,
    eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

fn gguf_int(v: &gguf_file::Value) -> Option<i64> {
    use gguf_file::Value::*;
    match v {
        U8(x) => Some(*x as i64),
        I8(x) => Some(*x as i64),
        U16(x) => Some(*x as i64),
        I16(x) => Some(*x as i64),
        U32(x) => Some(*x as i64),
        I32(x) => Some(*x as i64),
        U64(x) => i64::try_from(*x).ok(),
        I64(x) => Some(*x),
        _ => None,
    }
}

/// GPT-2's byte-to-character table, inverted: the byte each printable stand-in character means.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("a valid code point")
        };
        map.insert(c, b);
    }
    map
}

impl GgufTokenizer {
    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`) with candle's
    /// `TokenizerFromGguf`, then sets SmolLM2's pre-tokenizer: candle knows no `pre = smollm`
    /// and falls back to GPT-2's, which adds a prefix space and groups digits. SmolLM2's
    /// tokenizer.json has Digits(individual_digits) + ByteLevel(add_prefix_space = false); with
    /// it the ids match llama.cpp's.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, String> {
        use tokenizers::pre_tokenizers::{
            byte_level::ByteLevel, digits::Digits, sequence::Sequence, PreTokenizerWrapper,
        };
        let mut inner = tokenizers::Tokenizer::from_gguf(content).map_err(|e| e.to_string())?;
        let pre: Vec<PreTokenizerWrapper> = vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ];
        inner.with_pre_tokenizer(Some(Sequence::new(pre)));
        let md = &content.metadata;
        let tokens = md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .ok_or("no tokenizer.ggml.tokens")?;
        let types: Vec<i64> = md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|t| gguf_int(t).unwrap_or(1)).collect())
            .unwrap_or_default();
        let decoder = byte_level_decoder();
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut by_text = std::collections::HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let s = t.to_string().map_err(|e| e.to_string())?;
            // Types 3 (control) and 4 (user-defined) are literal text, not byte-level.
            let literal = matches!(types.get(i), Some(3 | 4));
            let bytes = if literal {
                s.as_bytes().to_vec()
            } else {
                let mut b = Vec::with_capacity(s.len());
                for c in s.chars() {
                    match decoder.get(&c) {
                        Some(&byte) => b.push(byte),
                        None => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                b
            };
            by_text.insert(s.clone(), i as u32);
            token_bytes.push(bytes);
        }
        let mut eos_ids = Vec::new();
        if let Some(id) = md.get("tokenizer.ggml.eos_token_id").and_then(gguf_int) {
            eos_ids.push(id as u32);
        }
        for name in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(&id) = by_text.get(name) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let chat_template = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned();
        Ok(GgufTokenizer {
            inner,
            token_bytes,
            eos_ids,
            chat_template,
        })
    }

    /// Token ids of `text` (special tokens such as `<|im_start|>` written in the text are those
    /// tokens; nothing is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Invalid(format!("cannot tokenize the prompt: {e}")))
    }

    /// The text of `ids`: their bytes together, decoded as UTF-8 (lossily only where the bytes
    /// together are not UTF-8). Special tokens are their literal text.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes one token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// One token's text; a token that is part of a UTF-8 sequence shows lossily (U+FFFD).
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// End-of-sequence ids: the GGUF's `eos_token_id` (`<|im_end|>`) and `<|endoftext|>`.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The GGUF's `tokenizer.chat_template` (Jinja), which [`render_chat`] follows.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::embedded::tests::engine;

    #[test]
    fn chat_template_matches_the_gguf_template() {
        let messages = vec![ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        }];
        assert_eq!(
            render_chat(&messages, true),
            format!(
                "<|im_start|>system\n{DEFAULT_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let with_system = vec![
            ChatMessage {
                role: "system".into(),
                content: "Be brief.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
            },
        ];
        assert_eq!(
            render_chat(&with_system, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        // The template we follow is the one in the file.
        let template = engine()
            .tokenizer()
            .chat_template()
            .expect("a chat template");
        assert!(template.contains(DEFAULT_SYSTEM_MESSAGE), "{template}");
        assert!(
            template.contains("messages[0]['role'] != 'system'"),
            "{template}"
        );
        assert!(template.contains("'<|im_start|>assistant\n'"), "{template}");
        // Special tokens are single tokens.
        let t = engine().tokenizer();
        let ids = t.encode("<|im_start|>user\nHi<|im_end|>\n").unwrap();
        assert_eq!(ids[0], 1, "{ids:?}");
        assert!(ids.contains(&2), "{ids:?}");
        assert_eq!(t.eos_ids(), &[2, 0]);
    }

    #[test]
    fn tokenizer_round_trips_and_splits_digits() {
        let t = engine().tokenizer();
        assert_eq!(t.vocab_size(), 49152);
        for s in [
            "Hello, world!",
            "  two leading spaces and trailing  ",
            "12345 + 678 = 13023",
            "Ünïcödé: 数学 𝔸 — ∫x dx, emoji 🙂",
            "<script>alert(1)</script>",
            "tabs\tand\nnewlines\r\n",
        ] {
            let ids = t.encode(s).unwrap();
            assert_eq!(t.decode(&ids), s, "{ids:?}");
        }
        let digits = t.encode("12345").unwrap();
        assert_eq!(digits.len(), 5, "one token per digit: {digits:?}");
        // No prefix space: "Hello" is not " Hello".
        assert_ne!(t.encode("Hello").unwrap(), t.encode(" Hello").unwrap());
        // A multi-byte character split over byte tokens decodes exactly only as a whole.
        let ids = t.encode("𝔸").unwrap();
        let joined: Vec<u8> = ids
            .iter()
            .flat_map(|&i| t.token_bytes(i).to_vec())
            .collect();
        assert_eq!(joined, "𝔸".as_bytes());
    }
}
