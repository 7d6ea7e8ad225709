//! The crate's error type: each variant carries what was wrong and what to do about it.

use std::path::PathBuf;

use semaug_data::augment::AugmentError;
use semaug_train::checkpoint::CheckpointError;

use crate::metrics::MetricsError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A configuration value outside its valid range.
    #[error("invalid {what}: {value} (valid: {valid})")]
    Config {
        what: &'static str,
        value: String,
        valid: String,
    },
    /// Training or evaluation data that cannot be used as given.
    #[error("bad {what}: {detail}")]
    Data { what: &'static str, detail: String },
    /// A weights file that cannot be read or written.
    #[error("{path}: {detail}")]
    Weights { path: PathBuf, detail: String },
    /// A weights file that does not match the model's architecture.
    #[error(
        "{path}: {detail}; was it saved from a model with another architecture or class count?"
    )]
    WeightsMismatch { path: PathBuf, detail: String },
    /// A checkpoint written by a run with other settings.
    #[error("checkpoint in {dir} was written with a different {what}; resume with the same settings or use a fresh checkpoint folder")]
    CheckpointMismatch { dir: PathBuf, what: &'static str },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Augment(#[from] AugmentError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A tensor operation failed (a shape or device bug rather than bad input).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Shorthand for a [`EvalError::Config`] check.
pub(crate) fn ensure(
    ok: bool,
    what: &'static str,
    value: impl std::fmt::Display,
    valid: &str,
) -> Result<(), EvalError> {
    if ok {
        Ok(())
    } else {
        Err(EvalError::Config {
            what,
            value: value.to_string(),
            valid: valid.to_owned(),
        })
    }
}
