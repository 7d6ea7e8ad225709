//! WebDataset output: tar shards `OUT/%05d.tar` of `samples_per_shard` samples each.
//!
//! The caller gives every output its global plan index; sample `i` belongs to shard
//! `i / samples_per_shard`, so shard membership never depends on timing. A finished
//! sample is its PNG staged at `.semaug/staging/<shard>/<key>.png` plus its record
//! sidecar, both published atomically. A shard is assembled (sorted keys, deterministic
//! headers) into a temp file and renamed into place when all its samples are staged, or
//! at `finish` for shards still partial (the last one, or shards whose other samples
//! another process is making). Assembly merges any existing tar of that shard with the
//! staged samples under a per-shard lock, then deletes only the staged files it used: a
//! partial shard published early simply grows when the rest arrives, and the final tar is
//! the same whatever the order.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use image::RgbImage;
use tar::Builder;

use super::atomic::{publish, publish_with};
use super::layout::{parse_shard_stem, Layout};
use super::lock::FileLock;
use super::manifest::{self, load_record};
use super::record::Record;
use super::tar_shard::{append_sample, for_each_sample};
use super::WriterError;
use crate::image_io::{decode_bytes, Limits};

#[derive(Debug)]
pub(crate) struct WebDatasetWriter {
    layout: Layout,
    samples_per_shard: u64,
}

impl WebDatasetWriter {
    pub(crate) fn new(layout: Layout, samples_per_shard: u64) -> Result<Self, WriterError> {
        if samples_per_shard == 0 {
            return Err(WriterError::EmptyShards);
        }
        Ok(Self {
            layout,
            samples_per_shard,
        })
    }

    pub(crate) fn is_done(&self, key: &str) -> bool {
        self.layout.record(key).is_file()
    }

    pub(crate) fn write(
        &self,
        png: &[u8],
        key: &str,
        record: &Record,
        global_index: u64,
    ) -> Result<(), WriterError> {
        let shard = global_index / self.samples_per_shard;
        let dir = self.layout.staging_shard(shard);
        fs::create_dir_all(&dir).map_err(|e| WriterError::io(&dir, "create", e))?;
        publish(&dir.join(format!("{key}.png")), png)?;
        manifest::publish_record(&self.layout, key, record)?;
        self.assemble_if_full(shard)
    }

    /// Assembles `shard` once all its samples are staged, unless another writer is
    /// already assembling it (then `finish` picks up whatever that one missed).
    fn assemble_if_full(&self, shard: u64) -> Result<(), WriterError> {
        let staged = staged_pngs(&self.layout.staging_shard(shard))?;
        if (staged.len() as u64) < self.samples_per_shard {
            return Ok(());
        }
        if let Some(_lock) = FileLock::try_acquire(&self.lock_path(shard))? {
            assemble(&self.layout, shard)?;
        }
        Ok(())
    }

    /// Assembles every shard with staged samples; returns the shard tars now present.
    pub(crate) fn finish(&self) -> Result<Vec<PathBuf>, WriterError> {
        for shard in staged_shards(&self.layout.staging())? {
            let _lock = FileLock::acquire(&self.lock_path(shard))?;
            assemble(&self.layout, shard)?;
        }
        webdataset_shards(self.layout.out())
    }

    fn lock_path(&self, shard: u64) -> PathBuf {
        self.layout
            .locks()
            .join(format!("{}.lock", super::layout::shard_stem(shard)))
    }
}

/// Staged `<key>.png` files of one shard directory, by key (temp files skipped).
fn staged_pngs(dir: &Path) -> Result<BTreeMap<String, PathBuf>, WriterError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(WriterError::io(dir, "list", e)),
    };
    let mut staged = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| WriterError::io(dir, "list", e))?;
        let name = entry.file_name();
        let key = name.to_str().and_then(|n| n.strip_suffix(".png"));
        if let Some(key) = key.filter(|k| !k.starts_with('.')) {
            staged.insert(key.to_owned(), entry.path());
        }
    }
    Ok(staged)
}

/// Shard numbers that have a staging directory, ascending.
fn staged_shards(staging: &Path) -> Result<Vec<u64>, WriterError> {
    let entries = match fs::read_dir(staging) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WriterError::io(staging, "list", e)),
    };
    let mut shards = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WriterError::io(staging, "list", e))?;
        if let Some(shard) = entry.file_name().to_str().and_then(parse_shard_stem) {
            shards.push(shard);
        }
    }
    shards.sort_unstable();
    Ok(shards)
}

/// Merges the shard's existing tar (if any) with its finished staged samples into a new
/// tar, publishes it, then removes the staged files it used. The caller holds the lock.
fn assemble(layout: &Layout, shard: u64) -> Result<(), WriterError> {
    let staging = layout.staging_shard(shard);
    let mut finished = BTreeMap::new();
    for (key, png_path) in staged_pngs(&staging)? {
        // A staged image without its record was interrupted: not finished, not shipped.
        if let Some(record) = load_record(layout, &key)? {
            finished.insert(key, (record, png_path));
        }
    }
    if !finished.is_empty() {
        let tar_path = layout.shard_tar(shard);
        let old = tar_path.is_file().then(|| tar_path.clone());
        publish_with(&tar_path, |w| {
            let mut builder = Builder::new(w);
            write_merged(layout, old.as_deref(), &finished, &mut builder)?;
            builder
                .into_inner()
                .map(|_| ())
                .map_err(|e| WriterError::io(&tar_path, "write", e))
        })?;
        for (_, png_path) in finished.values() {
            let _ = fs::remove_file(png_path);
        }
    }
    // Fails while other samples are still staged there, which is fine.
    let _ = fs::remove_dir(&staging);
    Ok(())
}

/// Writes the union of `old`'s samples and `staged`, in key order.
fn write_merged<W: std::io::Write>(
    layout: &Layout,
    old: Option<&Path>,
    staged: &BTreeMap<String, (Record, PathBuf)>,
    builder: &mut Builder<W>,
) -> Result<(), WriterError> {
    let mut pending = staged.iter().peekable();
    let append_staged = |builder: &mut Builder<W>, key: &str, record: &Record, png_path: &Path| {
        let png = fs::read(png_path).map_err(|e| WriterError::io(png_path, "read", e))?;
        append_sample(builder, key, record, &png)
            .map_err(|e| WriterError::io(png_path, "archive", e))
    };
    if let Some(old_path) = old {
        for_each_sample(old_path, |sample| {
            while let Some((key, (record, png_path))) =
                pending.next_if(|(k, _)| k.as_str() < sample.key.as_str())
            {
                append_staged(builder, key, record, png_path)?;
            }
            // Staged again (rewritten, or a kill came after publishing, before cleanup):
            // the staged sample is the newer one.
            if let Some((key, (record, png_path))) =
                pending.next_if(|(k, _)| k.as_str() == sample.key.as_str())
            {
                return append_staged(builder, key, record, png_path);
            }
            let bad = |detail: &str| WriterError::BadShard {
                path: old_path.to_owned(),
                detail: format!("sample {:?}: {detail}", sample.key),
            };
            let record =
                load_record(layout, &sample.key)?.ok_or_else(|| bad("no record sidecar"))?;
            let png = sample.png.as_deref().ok_or_else(|| bad("no .png member"))?;
            append_sample(builder, &sample.key, &record, png)
                .map_err(|e| WriterError::io(old_path, "archive", e))
        })?;
    }
    for (key, (record, png_path)) in pending {
        append_staged(builder, key, record, png_path)?;
    }
    Ok(())
}

/// The shard tars of an output folder, in shard order.
pub fn webdataset_shards(out: &Path) -> Result<Vec<PathBuf>, WriterError> {
    let entries = fs::read_dir(out).map_err(|e| WriterError::io(out, "list", e))?;
    let mut shards = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WriterError::io(out, "list", e))?;
        let name = entry.file_name();
        let shard = name
            .to_str()
            .and_then(|n| n.strip_suffix(".tar"))
            .and_then(parse_shard_stem);
        if let Some(shard) = shard {
            shards.push((shard, entry.path()));
        }
    }
    shards.sort();
    Ok(shards.into_iter().map(|(_, path)| path).collect())
}

/// Every sample of one shard: its record and decoded image, checked against its key
/// and label member.
pub fn read_webdataset_shard(path: &Path) -> Result<Vec<(Record, RgbImage)>, WriterError> {
    let limits = Limits::default();
    let mut samples = Vec::new();
    for_each_sample(path, |sample| {
        let bad = |detail: String| WriterError::BadShard {
            path: path.to_owned(),
            detail: format!("sample {:?}: {detail}", sample.key),
        };
        let json = sample
            .json
            .as_deref()
            .ok_or_else(|| bad("no .json member".into()))?;
        let record: Record =
            serde_json::from_slice(json).map_err(|e| bad(format!("bad .json: {e}")))?;
        if record.key()? != sample.key {
            return Err(bad(format!("its record names {}", record.file_name)));
        }
        if let Some(cls) = &sample.cls {
            if cls.as_slice() != record.label.to_string().as_bytes() {
                return Err(bad(format!(
                    "the .cls member disagrees with label {}",
                    record.label
                )));
            }
        }
        let png = sample
            .png
            .as_deref()
            .ok_or_else(|| bad("no .png member".into()))?;
        let image = decode_bytes(png, &path.join(format!("{}.png", sample.key)), &limits)?;
        samples.push((record, image));
        Ok(())
    })?;
    Ok(samples)
}

/// Every sample of a WebDataset output, shard by shard.
pub fn read_webdataset(out: &Path) -> Result<Vec<(Record, RgbImage)>, WriterError> {
    let mut samples = Vec::new();
    for shard in webdataset_shards(out)? {
        samples.extend(read_webdataset_shard(&shard)?);
    }
    Ok(samples)
}
