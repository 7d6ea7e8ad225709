//! The T5 tokenizer of SD3 (`tokenizer_3/`), padded and truncated as the pipeline asks:
//! `tokenizer_3(prompt, padding="max_length", max_length=256, truncation=True)`.
//!
//! The SentencePiece Unigram model (Viterbi over the piece scores, `<unk>` for characters
//! outside the vocabulary) and its normaliser / Metaspace pre-tokeniser / `</s>`
//! post-processor run in the `tokenizers` crate from `tokenizer.json`, which handles every
//! variant real T5 checkpoints ship (e.g. the precompiled character map). Padding and
//! truncation are done here: longer prompts keep `max_length - 1` ids plus `</s>`, shorter
//! ones are padded with `<pad>`. SD3 passes no attention mask, so the pads are encoded too.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::sd::error::SdError;
use crate::sd::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};
use crate::sd::weights::{read_bytes, read_json};

/// SD3's T5 sequence length (`max_sequence_length`).
pub const T5_MAX_LENGTH: usize = 256;
const EOS_TOKEN: &str = "</s>";
const PAD_TOKEN: &str = "<pad>";

/// The special tokens of `tokenizer_config.json`; each a string or `{"content": ...}`.
#[derive(Debug, Default, Deserialize)]
struct T5TokenizerConfig {
    eos_token: Option<serde_json::Value>,
    pad_token: Option<serde_json::Value>,
}

/// The token text of a special-token entry, `default` when absent or unreadable.
fn token_text<'a>(entry: &'a Option<serde_json::Value>, default: &'a str) -> &'a str {
    match entry {
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.get("content").and_then(|c| c.as_str()).unwrap_or(default),
        None => default,
    }
}

/// A T5 tokenizer that pads and truncates to a fixed length.
#[derive(Debug, Clone)]
pub struct T5Tokenizer {
    inner: Tokenizer,
    path: PathBuf,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
}

impl T5Tokenizer {
    /// Loads a `tokenizer_3/` folder (`tokenizer.json`, with `tokenizer_config.json` for the
    /// special tokens when present), padding to [`T5_MAX_LENGTH`].
    pub fn load(dir: &Path) -> Result<Self, SdError> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config: T5TokenizerConfig = if config_path.is_file() {
            read_json(&config_path, "T5 tokenizer")?
        } else {
            T5TokenizerConfig::default()
        };
        let path = dir.join(TOKENIZER_FILE);
        let bytes = read_bytes(
            &path,
            "the T5 tokenizer (SD3 tokenizer_3 needs tokenizer.json)",
        )?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| SdError::Tokenizer {
            path: path.clone(),
            detail: format!("not a readable tokenizer.json: {e}"),
        })?;
        // Padding and truncation are ours; a tokenizer.json that sets them must not apply.
        inner
            .with_truncation(None)
            .map_err(|e| SdError::Tokenizer {
                path: path.clone(),
                detail: e.to_string(),
            })?
            .with_padding(None);
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| SdError::Tokenizer {
                path: path.clone(),
                detail: format!("special token `{token}` is not in the vocabulary"),
            })
        };
        let eos_id = id(token_text(&config.eos_token, EOS_TOKEN))?;
        let pad_id = id(token_text(&config.pad_token, PAD_TOKEN))?;
        Ok(Self {
            inner,
            path,
            eos_id,
            pad_id,
            max_length: T5_MAX_LENGTH,
        })
    }

    /// The same tokenizer padding/truncating to `max_length` (at least 1) instead.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self, SdError> {
        if max_length == 0 {
            return Err(SdError::input("max_length", "must be at least 1"));
        }
        self.max_length = max_length;
        Ok(self)
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The ids of `prompt` with the trailing `</s>`, not padded or truncated.
    pub fn encode_unpadded(&self, prompt: &str) -> Result<Vec<u32>, SdError> {
        let encoding = self
            .inner
            .encode(prompt, true)
            .map_err(|e| SdError::Tokenizer {
                path: self.path.clone(),
                detail: format!("encoding {prompt:?}: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The `max_length` ids of `prompt`: at most `max_length - 1` ids then `</s>` when
    /// longer, then `<pad>` up to `max_length`.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>, SdError> {
        let mut ids = self.encode_unpadded(prompt)?;
        if ids.len() > self.max_length {
            ids.truncate(self.max_length - 1);
            ids.push(self.eos_id);
        }
        ids.resize(self.max_length, self.pad_id);
        Ok(ids)
    }

    /// `[B, max_length]` u32 ids of `prompts`.
    pub fn encode_batch(&self, prompts: &[&str], device: &Device) -> Result<Tensor, SdError> {
        let mut all = Vec::with_capacity(prompts.len() * self.max_length);
        for prompt in prompts {
            all.extend(self.encode(prompt)?);
        }
        Ok(Tensor::from_vec(
            all,
            (prompts.len(), self.max_length),
            device,
        )?)
    }
}
