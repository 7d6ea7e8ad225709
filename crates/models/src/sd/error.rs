//! Errors of the Stable Diffusion components: files on disk, configs, weights, tokenizer and
//! forward inputs. Every variant names the file or input it is about and what to do.

use std::path::PathBuf;

/// Everything that can go wrong loading or running an SD component.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    #[error("{path}: file not found ({what})")]
    MissingFile { path: PathBuf, what: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid {what} config: {source}")]
    ConfigJson {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("{origin}: unsupported {what} config: `{field}` {detail}")]
    UnsupportedConfig {
        origin: String,
        what: &'static str,
        field: &'static str,
        detail: String,
    },

    #[error("{path}: not a readable safetensors file: {detail}")]
    Safetensors { path: PathBuf, detail: String },

    #[error("{origin}: tensor `{name}` has dtype {dtype}; weights must be F32, F16 or BF16")]
    WeightDtype {
        origin: String,
        name: String,
        dtype: String,
    },

    #[error("{origin}: weight `{name}` (shape {shape:?}) is missing; the checkpoint does not match its config")]
    MissingWeight {
        origin: String,
        name: String,
        shape: Vec<usize>,
    },

    #[error("{origin}: weight `{name}` has shape {found:?}, the config needs {expected:?}")]
    WeightShape {
        origin: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error(
        "{origin}: {} weight(s) the config does not use, e.g. `{}`; the checkpoint does not \
         match its config (or uses an unsupported layer)",
        names.len(), names.first().map(String::as_str).unwrap_or("")
    )]
    UnexpectedWeights { origin: String, names: Vec<String> },

    #[error("{path}: tokenizer: {detail}")]
    Tokenizer { path: PathBuf, detail: String },

    #[error("invalid input `{input}`: {detail}")]
    Input { input: &'static str, detail: String },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl SdError {
    pub(crate) fn input(input: &'static str, detail: impl Into<String>) -> Self {
        Self::Input {
            input,
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(
        origin: impl Into<String>,
        what: &'static str,
        field: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::UnsupportedConfig {
            origin: origin.into(),
            what,
            field,
            detail: detail.into(),
        }
    }
}
