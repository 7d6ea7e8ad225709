//! What can stop an experiment, each error naming the file, run or setting involved and
//! what to do about it.

use std::path::PathBuf;

use semaug_data::dataset::DatasetError;
use semaug_data::image_io::ImageError;
use semaug_data::writer::WriterError;
use semaug_ops::augment::AugmentError as GenerateError;
use semaug_ops::spec::SpecError;

use crate::error::EvalError;

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A setting outside its valid range.
    #[error("invalid {what}: {value} (valid: {valid})")]
    Config {
        what: &'static str,
        value: String,
        valid: String,
    },
    /// A method entry that is neither a baseline nor a method `semaug augment` accepts.
    #[error("method `{spec}`: {source}")]
    Method {
        spec: String,
        #[source]
        source: SpecError,
    },
    /// A generative method without a generator or an existing synthetic folder.
    #[error("method `{spec}` is generative: give a generator (--model) or an augmented folder (--synthetic)")]
    NoGenerator { spec: String },
    /// Training or evaluation data that do not fit together.
    #[error("{what}: {detail}")]
    Data { what: &'static str, detail: String },
    /// The output folder holds runs made with other settings.
    #[error(
        "{path}: written by an experiment with other settings ({detail}); use a fresh --out \
         folder or the same settings"
    )]
    SettingsChanged { path: PathBuf, detail: String },
    /// An augmented folder (`--synthetic`) without outputs of the method.
    #[error("{dir}: no outputs of method `{method}` with these parameters (the folder holds: {found}); generate them with `semaug augment --method {method}` or drop --synthetic")]
    SyntheticMissing {
        dir: PathBuf,
        method: String,
        found: String,
    },
    #[error("{path}: cannot {action}: {detail}")]
    Io {
        path: PathBuf,
        action: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error("generating synthetic images: {0}")]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Eval(#[from] EvalError),
}

impl ExperimentError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, e: impl ToString) -> Self {
        Self::Io {
            path: path.into(),
            action,
            detail: e.to_string(),
        }
    }

    pub(crate) fn data(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Data {
            what,
            detail: detail.into(),
        }
    }
}

/// Shorthand for an [`ExperimentError::Config`] check.
pub(crate) fn ensure(
    ok: bool,
    what: &'static str,
    value: impl std::fmt::Display,
    valid: &str,
) -> Result<(), ExperimentError> {
    if ok {
        Ok(())
    } else {
        Err(ExperimentError::Config {
            what,
            value: value.to_string(),
            valid: valid.to_owned(),
        })
    }
}
