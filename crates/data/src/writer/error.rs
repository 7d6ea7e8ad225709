//! The one error type of the writers: every variant names the file or folder involved
//! and, where there is one, what the user can do about it.

use std::path::PathBuf;

use crate::image_io::ImageError;

/// What went wrong writing or reading an output dataset.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error(
        "output folder {out} is inside the input dataset {input}; inputs are never written to, \
         choose an --out outside it"
    )]
    InsideInput { out: PathBuf, input: PathBuf },
    #[error("{out} was written with different settings: {detail}; use a new --out, or delete it to start over")]
    SettingsChanged { out: PathBuf, detail: String },
    #[error(
        "{out} already holds files that semaug did not write (no .semaug/run.json); \
         use a new or empty --out"
    )]
    ForeignFolder { out: PathBuf },
    #[error("{path}: invalid JSON ({source}); delete the file and run the same command again")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("file_name {file_name:?} cannot name an output: {reason}")]
    BadFileName { file_name: String, reason: String },
    #[error("{key:?} is not a sample key written by semaug: {reason}")]
    BadKey { key: String, reason: String },
    #[error("{file_name}: the image bytes are not a PNG file (the writer stores PNG only)")]
    NotPng { file_name: String },
    #[error(
        "{file_name}: record says label {label} = {class_name:?}, but the class list has {found}; \
         pass the same class list the records were made with"
    )]
    ClassMismatch {
        file_name: String,
        label: u32,
        class_name: String,
        found: String,
    },
    #[error("samples_per_shard must be at least 1")]
    EmptyShards,
    #[error("{path}: not a WebDataset shard written by semaug: {detail}")]
    BadShard { path: PathBuf, detail: String },
    #[error(
        "{path}: held by another semaug process ({owner}) for {waited_s} s; if no semaug \
         process is running, delete this lock file"
    )]
    LockTimeout {
        path: PathBuf,
        owner: String,
        waited_s: u64,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl WriterError {
    /// An I/O failure on `path` while trying to `action` it.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
