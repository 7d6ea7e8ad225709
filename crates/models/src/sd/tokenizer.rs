//! The CLIP BPE tokenizer of Stable Diffusion, from a local diffusers `tokenizer/` folder.
//!
//! Ports the behaviour of transformers `CLIPTokenizer` (`models/clip/tokenization_clip.py`)
//! as the SD pipelines call it: `tokenizer(prompt, padding="max_length", max_length=77,
//! truncation=True).input_ids`. The BPE itself runs in the `tokenizers` crate from
//! `tokenizer.json`; a folder holding only the classic `vocab.json` + `merges.txt` (as real
//! SD 1.x repositories do) is turned into the equivalent `tokenizer.json` in memory.
//! Padding and truncation are done here: `ids = encode(prompt)` with BOS/EOS; if longer than
//! `max_length`, keep `ids[..max_length - 1]` and append EOS; then pad with the pad id.
//! Textual-inversion concept tokens are added tokens: each gets the next free id.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use tokenizers::{AddedToken, Tokenizer};

use super::error::SdError;
use super::weights::read_bytes;

/// The tokenizer file of the folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// transformers' tokenizer settings (special tokens, `model_max_length`).
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
const VOCAB_FILE: &str = "vocab.json";
const MERGES_FILE: &str = "merges.txt";

const BOS_TOKEN: &str = "<|startoftext|>";
const EOS_TOKEN: &str = "<|endoftext|>";
/// CLIP's context length.
pub const CLIP_MAX_LENGTH: usize = 77;
/// CLIP's pre-tokenisation regex (OpenAI `SimpleTokenizer`).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// A special-token entry of `tokenizer_config.json`: a plain string or `{"content": ...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Plain(String),
    Object { content: String },
}

impl TokenEntry {
    fn content(&self) -> &str {
        match self {
            Self::Plain(s) => s,
            Self::Object { content } => content,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    bos_token: Option<TokenEntry>,
    eos_token: Option<TokenEntry>,
    pad_token: Option<TokenEntry>,
    model_max_length: Option<f64>,
}

/// A CLIP tokenizer that pads and truncates to a fixed length, as SD feeds its text encoder.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    /// Where it came from, for error messages.
    path: PathBuf,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
}

impl ClipTokenizer {
    /// Loads a diffusers `tokenizer/` folder: `tokenizer.json` (or `vocab.json` +
    /// `merges.txt`), with `tokenizer_config.json` for the special tokens and the length
    /// when present (defaults: `<|startoftext|>`, `<|endoftext|>` also as pad, 77).
    pub fn load(dir: &Path) -> Result<Self, SdError> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config: TokenizerConfig = if config_path.exists() {
            super::weights::read_json(&config_path, "tokenizer")?
        } else {
            TokenizerConfig::default()
        };
        let json_path = dir.join(TOKENIZER_FILE);
        let (inner, path) = if json_path.exists() {
            (read_tokenizer_json(&json_path)?, json_path)
        } else if dir.join(VOCAB_FILE).exists() {
            let path = dir.join(VOCAB_FILE);
            (tokenizer_from_vocab_merges(dir)?, path)
        } else {
            return Err(SdError::MissingFile {
                path: json_path,
                what: "a CLIP tokenizer folder holds tokenizer.json or vocab.json + merges.txt"
                    .into(),
            });
        };
        let max_length = match config.model_max_length {
            // transformers writes a huge sentinel when no length is set.
            Some(n) if (1.0..=4096.0).contains(&n) => n as usize,
            _ => CLIP_MAX_LENGTH,
        };
        let token = |entry: &Option<TokenEntry>, default: &str| {
            entry
                .as_ref()
                .map(|e| e.content().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        let bos = token(&config.bos_token, BOS_TOKEN);
        let eos = token(&config.eos_token, EOS_TOKEN);
        let pad = token(&config.pad_token, &eos);
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| SdError::Tokenizer {
                path: path.clone(),
                detail: format!("special token `{t}` is not in the vocabulary"),
            })
        };
        let (bos_id, eos_id, pad_id) = (id(&bos)?, id(&eos)?, id(&pad)?);
        Self::from_parts(inner, path, bos_id, eos_id, pad_id, max_length)
    }

    /// Loads a `tokenizer.json` file alone, with CLIP's defaults: BOS `<|startoftext|>`,
    /// EOS = pad `<|endoftext|>`, length 77.
    pub fn from_file(path: &Path) -> Result<Self, SdError> {
        let inner = read_tokenizer_json(path)?;
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| SdError::Tokenizer {
                path: path.to_path_buf(),
                detail: format!("special token `{t}` is not in the vocabulary"),
            })
        };
        let (bos_id, eos_id) = (id(BOS_TOKEN)?, id(EOS_TOKEN)?);
        Self::from_parts(
            inner,
            path.to_path_buf(),
            bos_id,
            eos_id,
            eos_id,
            CLIP_MAX_LENGTH,
        )
    }

    fn from_parts(
        mut inner: Tokenizer,
        path: PathBuf,
        bos_id: u32,
        eos_id: u32,
        pad_id: u32,
        max_length: usize,
    ) -> Result<Self, SdError> {
        // Padding and truncation are ours; a tokenizer.json that sets them must not apply.
        inner
            .with_truncation(None)
            .map_err(|e| SdError::Tokenizer {
                path: path.clone(),
                detail: e.to_string(),
            })?
            .with_padding(None);
        Ok(Self {
            inner,
            path,
            bos_id,
            eos_id,
            pad_id,
            max_length,
        })
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The padded length (77 for CLIP).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of `token` (a vocabulary entry or an added token), if any.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Adds a textual-inversion concept token (e.g. `<concept-0>`) and returns its id, the
    /// next free one. Like diffusers' textual-inversion training, refuses a token the
    /// tokenizer already knows.
    pub fn add_concept_token(&mut self, token: &str) -> Result<u32, SdError> {
        if token.trim().is_empty() {
            return Err(SdError::input("concept token", "must not be empty"));
        }
        if let Some(id) = self.inner.token_to_id(token) {
            return Err(SdError::input(
                "concept token",
                format!("`{token}` is already in the tokenizer (id {id}); choose another token"),
            ));
        }
        let added = self
            .inner
            .add_tokens([AddedToken::from(token, false)])
            .map_err(|e| SdError::Tokenizer {
                path: self.path.clone(),
                detail: format!("adding `{token}`: {e}"),
            })?;
        match self.inner.token_to_id(token) {
            Some(id) if added == 1 => Ok(id),
            _ => Err(SdError::Tokenizer {
                path: self.path.clone(),
                detail: format!("`{token}` could not be added"),
            }),
        }
    }

    /// The ids of `prompt` with BOS and EOS, not padded or truncated.
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

    /// The `max_length` ids of `prompt`: truncated to `max_length - 1` ids plus EOS when
    /// longer, then padded with the pad id (transformers `padding="max_length",
    /// truncation=True`).
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

fn read_tokenizer_json(path: &Path) -> Result<Tokenizer, SdError> {
    let bytes = read_bytes(path, "the tokenizer")?;
    Tokenizer::from_bytes(&bytes).map_err(|e| SdError::Tokenizer {
        path: path.to_path_buf(),
        detail: format!("not a readable tokenizer.json: {e}"),
    })
}

/// Builds CLIP's `tokenizer.json` (the layout transformers writes for `CLIPTokenizerFast`)
/// from the classic `vocab.json` + `merges.txt`.
fn tokenizer_from_vocab_merges(dir: &Path) -> Result<Tokenizer, SdError> {
    let vocab_path = dir.join(VOCAB_FILE);
    let merges_path = dir.join(MERGES_FILE);
    let bad = |path: &Path, detail: String| SdError::Tokenizer {
        path: path.to_path_buf(),
        detail,
    };
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&read_bytes(&vocab_path, "the CLIP vocabulary")?)
            .map_err(|e| bad(&vocab_path, format!("not a token -> id JSON object: {e}")))?;
    let merges_text = String::from_utf8(read_bytes(&merges_path, "the CLIP BPE merges")?)
        .map_err(|e| bad(&merges_path, format!("not UTF-8: {e}")))?;
    let merges: Vec<&str> = merges_text
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .collect();
    let special = |token: &str| -> Result<serde_json::Value, SdError> {
        let id = vocab
            .get(token)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| bad(&vocab_path, format!("`{token}` is not in the vocabulary")))?;
        Ok(
            serde_json::json!({"id": id, "content": token, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}),
        )
    };
    let (bos, eos) = (special(BOS_TOKEN)?, special(EOS_TOKEN)?);
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [bos.clone(), eos.clone()],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_PATTERN}, "behavior": "Removed",
             "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
             "use_regex": true}]},
        "post_processor": {"type": "RobertaProcessing",
            "sep": [EOS_TOKEN, eos["id"]], "cls": [BOS_TOKEN, bos["id"]],
            "trim_offsets": false, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
            "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": EOS_TOKEN,
            "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    });
    Tokenizer::from_bytes(json.to_string().as_bytes()).map_err(|e| {
        bad(
            &vocab_path,
            format!("vocab.json + merges.txt do not form a CLIP BPE: {e}"),
        )
    })
}
