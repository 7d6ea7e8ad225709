//! Errors of the pretrained-checkpoint backends: resolving `--model`, validating files,
//! loading components and mapping schedules. Every variant names the file, folder or model
//! id it is about and, where there is one, what to do; each prints as one line.

use std::path::PathBuf;

use crate::sd::SdError;
use crate::unet::UnetError;

/// Everything that can go wrong finding, checking or loading a pretrained model.
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: not a model: {detail}")]
    NotAModel { path: PathBuf, detail: String },

    #[error("{path}: pipeline `{class_name}` is not supported; supported: {supported}")]
    UnsupportedPipeline {
        path: PathBuf,
        class_name: String,
        supported: &'static str,
    },

    #[error(
        "{dir}: holds only PyTorch pickle weights (`{found}`), which are never read (loading \
         them can run code); convert them to safetensors, e.g. in Python \
         `from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`"
    )]
    PickleWeights { dir: PathBuf, found: String },

    #[error("{dir}: no weights file (expected one of {expected})")]
    MissingWeights { dir: PathBuf, expected: String },

    #[error("{path}: invalid safetensors file: {detail}")]
    Safetensors { path: PathBuf, detail: String },

    #[error(
        "model `{id}` is not in the local Hugging Face cache ({cache}); nothing is downloaded \
         at run time: fetch it first (e.g. `huggingface-cli download {id}`) or pass a directory"
    )]
    NotCached { id: String, cache: PathBuf },

    #[error("model `{id}` in {dir}: {detail}")]
    CacheRevision {
        id: String,
        dir: PathBuf,
        detail: String,
    },

    #[error("{origin}: invalid noise schedule: {detail}")]
    Schedule { origin: String, detail: String },

    /// The model cannot do what was asked (the message says why and what to do).
    #[error("{0}")]
    Unsupported(String),

    #[error(transparent)]
    Sd(#[from] SdError),

    #[error(transparent)]
    Unet(#[from] UnetError),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl PretrainedError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn not_a_model(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::NotAModel {
            path: path.into(),
            detail: detail.into(),
        }
    }
}
