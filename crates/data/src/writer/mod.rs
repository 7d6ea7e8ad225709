//! Dataset writers: ImageFolder (+ `metadata.jsonl`) or WebDataset tar shards, with
//! provenance records, resumable to the same bytes.
//!
//! Principal type: [`DatasetWriter`], opened with [`DatasetWriter::open`], fed with
//! [`DatasetWriter::write`] and closed with [`DatasetWriter::finish`]. Files are laid out
//! as in `layout` (see [`STATE_DIR`], [`METADATA_FILE`], [`CLASSES_FILE`]).
//!
//! # Nothing is lost: how a run resumes to the same bytes
//!
//! - Every file is published by write-temp + fsync + rename ([`atomic::publish`]); a kill
//!   leaves at most a hidden temp file, removed by the next `open` or `finish` once its
//!   writer is known to be dead ([`atomic::clean_stale_temps`]).
//! - An output is done when both its image and its record sidecar
//!   (`.semaug/records/<key>.json`) exist. The image is published first, the sidecar
//!   second, so [`DatasetWriter::is_done`] never reports a half-written output; a restart
//!   with the same command skips done keys and redoes the others.
//! - `metadata.jsonl` is never appended to. `finish` rebuilds it from all sidecars sorted
//!   by `file_name` and publishes it atomically, so its bytes do not depend on output
//!   order, restarts, or which process made which output. WebDataset shards are
//!   assembled from staged samples in key order with fixed tar headers (see
//!   `webdataset`), so they do not either.
//! - `.semaug/run.json` holds a fingerprint of the settings (format plus the caller's
//!   JSON: method, seed, model hash, ...). Opening a folder written with different
//!   settings is refused ([`WriterError::SettingsChanged`]); so is writing inside the
//!   input dataset ([`WriterError::InsideInput`]) or into a non-empty folder semaug did
//!   not write ([`WriterError::ForeignFolder`]).
//!
//! # Several processes, one folder
//!
//! Cluster shards may write into one OUT at the same time with the same fingerprint
//! (which must therefore not name the shard). Each writes only its own keys; `finish` of
//! any of them rebuilds `metadata.jsonl` from every sidecar present and assembles every
//! staged WebDataset shard, merging with what earlier processes assembled, under lock
//! files. The final metadata and tars are complete, and equal to a single run's, once
//! every process has called `finish`.

pub mod atomic;
mod error;
mod fingerprint;
mod imagefolder;
mod layout;
mod lock;
mod manifest;
mod owner;
mod record;
mod tar_shard;
mod webdataset;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use error::WriterError;
pub use imagefolder::{read_imagefolder, read_imagefolder_metadata};
pub use layout::{CLASSES_FILE, METADATA_FILE, STATE_DIR};
pub use manifest::{read_classes, read_metadata};
pub use record::{file_name_from_key, sample_key, Record, MAX_KEY_LEN};
pub use webdataset::{read_webdataset, read_webdataset_shard, webdataset_shards};

use crate::image_io::encode_png;
use imagefolder::ImageFolderWriter;
use layout::Layout;
use webdataset::WebDatasetWriter;

/// The output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Format {
    /// `OUT/<class>/<name>.png` plus `metadata.jsonl` (Hugging Face `imagefolder`).
    #[serde(rename = "imagefolder")]
    ImageFolder,
    /// `OUT/%05d.tar` shards; sample `i` goes to shard `i / samples_per_shard`.
    #[serde(rename = "webdataset")]
    WebDataset { samples_per_shard: u64 },
}

/// What `finish` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishSummary {
    /// Lines in `metadata.jsonl` (outputs finished by all processes so far).
    pub records: usize,
    /// WebDataset shard tars present (empty for ImageFolder).
    pub shards: Vec<PathBuf>,
    /// Abandoned temp files removed.
    pub temps_removed: usize,
}

#[derive(Debug)]
enum Backend {
    ImageFolder(ImageFolderWriter),
    WebDataset(WebDatasetWriter),
}

/// Writes one output dataset; safe to share between threads (`&self` methods).
#[derive(Debug)]
pub struct DatasetWriter {
    layout: Layout,
    format: Format,
    backend: Backend,
}

impl DatasetWriter {
    /// Opens (creating or resuming) the output folder `out_dir`.
    ///
    /// `run_fingerprint` describes the settings that decide the output bytes (method,
    /// parameters, seed, model hash, plan); a folder begun with other settings is
    /// refused. `input_root` is the input dataset: nothing is ever written inside it.
    pub fn open(
        out_dir: &Path,
        format: Format,
        run_fingerprint: &serde_json::Value,
        input_root: Option<&Path>,
    ) -> Result<Self, WriterError> {
        if format
            == (Format::WebDataset {
                samples_per_shard: 0,
            })
        {
            return Err(WriterError::EmptyShards);
        }
        if let Some(input) = input_root {
            atomic::ensure_outside(out_dir, input)?;
        }
        let layout = Layout::new(out_dir);
        refuse_foreign(&layout)?;
        for dir in [layout.records(), layout.staging(), layout.locks()] {
            fs::create_dir_all(&dir).map_err(|e| WriterError::io(&dir, "create", e))?;
        }
        let fingerprint = serde_json::json!({ "format": format, "settings": run_fingerprint });
        fingerprint::check_or_write(&layout, &fingerprint)?;
        atomic::clean_stale_temps(layout.out())?;
        let backend = match format {
            Format::ImageFolder => Backend::ImageFolder(ImageFolderWriter::new(
                layout.clone(),
                input_root.map(Path::to_owned),
            )),
            Format::WebDataset { samples_per_shard } => {
                Backend::WebDataset(WebDatasetWriter::new(layout.clone(), samples_per_shard)?)
            }
        };
        Ok(Self {
            layout,
            format,
            backend,
        })
    }

    pub fn out_dir(&self) -> &Path {
        self.layout.out()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// True when the output with this sample key (see [`sample_key`]) is finished.
    /// Unreadable state counts as not done: the output is then made again.
    pub fn is_done(&self, key: &str) -> bool {
        match &self.backend {
            Backend::ImageFolder(writer) => writer.is_done(key),
            Backend::WebDataset(writer) => writer.is_done(key),
        }
    }

    /// Encodes `image` as PNG and writes it with `record`; see [`Self::write_png`].
    pub fn write(
        &self,
        image: &RgbImage,
        record: &Record,
        global_index: u64,
    ) -> Result<(), WriterError> {
        self.write_png(&encode_png(image)?, record, global_index)
    }

    /// Publishes one finished output. `global_index` is the output's position in the
    /// whole plan (it picks the WebDataset shard; ImageFolder ignores it). Writing a key
    /// again replaces it.
    pub fn write_png(
        &self,
        png: &[u8],
        record: &Record,
        global_index: u64,
    ) -> Result<(), WriterError> {
        let key = record.key()?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(WriterError::NotPng {
                file_name: record.file_name.clone(),
            });
        }
        match &self.backend {
            Backend::ImageFolder(writer) => writer.write(png, &key, record),
            Backend::WebDataset(writer) => writer.write(png, &key, record, global_index),
        }
    }

    /// Assembles what is left, checks every record against `classes` (names in label
    /// order), publishes `classes.json` and `metadata.jsonl`, and removes abandoned temps.
    pub fn finish(self, classes: &[String]) -> Result<FinishSummary, WriterError> {
        let shards = match &self.backend {
            Backend::ImageFolder(_) => Vec::new(),
            Backend::WebDataset(writer) => writer.finish()?,
        };
        let records = manifest::rebuild(&self.layout, classes)?;
        let temps_removed = atomic::clean_stale_temps(self.layout.out())?;
        Ok(FinishSummary {
            records,
            shards,
            temps_removed,
        })
    }
}

/// Refuses a non-empty folder that has no fingerprint: it holds someone else's files.
fn refuse_foreign(layout: &Layout) -> Result<(), WriterError> {
    let out = layout.out();
    let entries = match fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(WriterError::io(out, "list", e)),
    };
    if layout.run_json().is_file() {
        return Ok(());
    }
    for entry in entries {
        let entry = entry.map_err(|e| WriterError::io(out, "list", e))?;
        // Our state folder alone: another shard is starting right now.
        if entry.file_name() != STATE_DIR {
            return Err(WriterError::ForeignFolder {
                out: out.to_owned(),
            });
        }
    }
    Ok(())
}
