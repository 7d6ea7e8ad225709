//! Errors of the UNet: configuration, files on disk, weights and forward inputs.

use std::path::PathBuf;

use super::config::ConfigError;

/// Everything that can go wrong building, loading, saving or running a [`super::UNet2DModel`].
#[derive(Debug, thiserror::Error)]
pub enum UnetError {
    #[error("invalid UNet config: {0}")]
    Config(#[from] ConfigError),

    #[error(
        "{path}: file not found (a diffusers UNet2DModel directory holds config.json and \
         diffusion_pytorch_model.safetensors){hint}"
    )]
    MissingFile { path: PathBuf, hint: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid UNet2DModel config.json: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: {source}")]
    InvalidConfigFile {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },

    #[error("{path}: not a readable safetensors file: {detail}")]
    Safetensors { path: PathBuf, detail: String },

    #[error("{origin}: tensor `{name}` has dtype {dtype}; UNet weights must be F32, F16 or BF16")]
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
        "{origin}: {} weight(s) the config does not use, e.g. `{}`; the checkpoint does not match \
         its config (or uses an unsupported layer)",
        names.len(), names.first().map(String::as_str).unwrap_or("")
    )]
    UnexpectedWeights { origin: String, names: Vec<String> },

    #[error("invalid UNet input `{input}`: {detail}")]
    Input { input: &'static str, detail: String },

    #[error("saving a UNet: {detail}")]
    Save { detail: String },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl UnetError {
    pub(crate) fn input(input: &'static str, detail: impl Into<String>) -> Self {
        Self::Input {
            input,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
