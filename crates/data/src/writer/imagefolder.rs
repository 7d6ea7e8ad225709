//! ImageFolder output: `OUT/<file_name>` per image, Hugging Face `imagefolder` style.
//!
//! A finished output is its image (published first) plus its record sidecar (published
//! second); a kill between the two leaves an image without a record, which counts as not
//! done and is simply published again, with the same bytes, on restart.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;

use super::atomic::{ensure_outside, publish};
use super::layout::Layout;
use super::manifest::{self, read_metadata};
use super::record::{file_name_from_key, Record};
use super::WriterError;
use crate::image_io::{decode_file, Limits};

/// Writes images under their `file_name`; records go to the shared sidecars.
#[derive(Debug)]
pub(crate) struct ImageFolderWriter {
    layout: Layout,
    protect: Option<PathBuf>,
    /// Parent directories already created and checked against `protect`.
    ready_dirs: Mutex<HashSet<PathBuf>>,
}

impl ImageFolderWriter {
    pub(crate) fn new(layout: Layout, protect: Option<PathBuf>) -> Self {
        Self {
            layout,
            protect,
            ready_dirs: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn is_done(&self, key: &str) -> bool {
        let Ok(file_name) = file_name_from_key(key) else {
            return false;
        };
        self.layout.record(key).is_file() && self.layout.out().join(file_name).is_file()
    }

    pub(crate) fn write(&self, png: &[u8], key: &str, record: &Record) -> Result<(), WriterError> {
        let path = self.layout.out().join(&record.file_name);
        self.prepare_parent(&path)?;
        publish(&path, png)?;
        manifest::publish_record(&self.layout, key, record)
    }

    /// Creates the image's directory once, after checking that it (through any symbolic
    /// link) is not inside the input dataset.
    fn prepare_parent(&self, path: &Path) -> Result<(), WriterError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        let mut ready = self.ready_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if ready.contains(parent) {
            return Ok(());
        }
        if let Some(input) = &self.protect {
            ensure_outside(parent, input)?;
        }
        fs::create_dir_all(parent).map_err(|e| WriterError::io(parent, "create", e))?;
        ready.insert(parent.to_owned());
        Ok(())
    }
}

/// The records of an ImageFolder output, after checking every image file exists.
pub fn read_imagefolder_metadata(out: &Path) -> Result<Vec<Record>, WriterError> {
    let records = read_metadata(out)?;
    for record in &records {
        let path = out.join(&record.file_name);
        if !path.is_file() {
            return Err(WriterError::io(
                path,
                "find the image listed in metadata.jsonl",
                std::io::ErrorKind::NotFound.into(),
            ));
        }
    }
    Ok(records)
}

/// Every record of an ImageFolder output with its decoded image, in metadata order.
pub fn read_imagefolder(out: &Path) -> Result<Vec<(Record, RgbImage)>, WriterError> {
    let limits = Limits::default();
    read_metadata(out)?
        .into_iter()
        .map(|record| {
            let image = decode_file(&out.join(&record.file_name), &limits)?;
            Ok((record, image))
        })
        .collect()
}
