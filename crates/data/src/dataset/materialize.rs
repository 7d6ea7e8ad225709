//! Writing a (sub)dataset out as a folder of its own: the split folders that training
//! and evaluation read (`labeled/`, `val/`, `pool/`), plus the list of its sample ids.
//!
//! Files are hard-linked when the filesystem allows it (no extra space, inputs untouched)
//! and copied otherwise, each published by write-to-temp + rename; in-memory samples
//! (CIFAR binary) are written as PNG. A labeled dataset keeps `<class>/<name>` and gets a
//! `classes.json`; an unlabeled one (`keep_labels = false`) is flattened to numbered
//! files so no label survives in a path.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Dataset, DatasetError, Source, CLASSES_JSON};
use crate::image_io::encode_png;
use crate::writer::atomic::publish;

/// The list of sample ids written next to a materialised dataset.
pub const IDS_FILE: &str = "ids.txt";

impl Dataset {
    /// Write this dataset under `out` (which must not exist or be empty). Returns the
    /// number of images written.
    pub fn materialize(&self, out: &Path, keep_labels: bool) -> Result<usize, DatasetError> {
        let io = |path: &Path, e: std::io::Error| DatasetError::Write {
            path: path.to_owned(),
            source: e,
        };
        let non_empty = out.exists() && fs::read_dir(out).map_err(|e| io(out, e))?.next().is_some();
        if non_empty {
            return Err(DatasetError::OutputExists {
                path: out.to_owned(),
            });
        }
        fs::create_dir_all(out).map_err(|e| io(out, e))?;
        for (i, sample) in self.samples.iter().enumerate() {
            let relative = if keep_labels {
                PathBuf::from(&sample.id)
            } else {
                PathBuf::from(format!("{i:06}.{}", extension(&sample.source)))
            };
            let dest = out.join(match (&sample.source, keep_labels) {
                (Source::Memory(_), true) => memory_name(&sample.id, sample.class, &self.classes),
                _ => relative,
            });
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            match &sample.source {
                Source::File(path) => link_or_copy(path, &dest).map_err(|e| io(&dest, e))?,
                Source::Memory(image) => {
                    let bytes = encode_png(image).map_err(DatasetError::Image)?;
                    publish(&dest, &bytes)
                        .map_err(|e| io(&dest, std::io::Error::other(e.to_string())))?;
                }
            }
        }
        if keep_labels && !self.classes.is_empty() {
            let json = serde_json::to_vec(&self.classes).unwrap_or_default();
            let path = out.join(CLASSES_JSON);
            publish(&path, &json).map_err(|e| io(&path, std::io::Error::other(e.to_string())))?;
        }
        let ids: String = self.samples.iter().map(|s| format!("{}\n", s.id)).collect();
        let path = out.join(IDS_FILE);
        publish(&path, ids.as_bytes())
            .map_err(|e| io(&path, std::io::Error::other(e.to_string())))?;
        Ok(self.samples.len())
    }
}

fn extension(source: &Source) -> String {
    match source {
        Source::File(path) => path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "png".into()),
        Source::Memory(_) => "png".into(),
    }
}

/// `<class>/<file>-<record>.png` for a CIFAR record id `file#record`.
fn memory_name(id: &str, class: Option<usize>, classes: &[String]) -> PathBuf {
    let class = class
        .and_then(|c| classes.get(c))
        .map_or("unlabeled", String::as_str);
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from(class).join(format!("{name}.png"))
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let bytes = fs::read(from)?;
    publish(to, &bytes).map_err(|e| std::io::Error::other(e.to_string()))
}
