//! Publishing files so that a reader (or a restarted run) never sees a partial one.
//!
//! [`publish`] writes the bytes to a hidden temp file in the same directory
//! (`.<name>.tmp.<host>-<pid>.<n>`), fsyncs it, renames it over the final name and fsyncs
//! the directory: the final name holds either the old content or the complete new one.
//! A kill in between leaves only a temp file, which [`clean_stale_temps`] removes once
//! its writer is known to be gone (see `owner`). [`ensure_outside`] keeps every output
//! out of the input dataset.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::owner;
use super::WriterError;

/// Temp files untouched for this long are abandoned whoever wrote them.
const TEMP_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Longest part of the final name kept in a temp name (file names stop at 255 bytes).
const TEMP_NAME_KEEP: usize = 120;

/// Atomically replace `path` with `bytes`.
pub fn publish(path: &Path, bytes: &[u8]) -> Result<(), WriterError> {
    publish_with(path, |w| {
        w.write_all(bytes)
            .map_err(|e| WriterError::io(path, "write", e))
    })
}

/// Atomically replace `path` with what `write` streams into it. If `write` fails, the
/// temp file is removed, `path` is untouched and `write`'s error is returned.
pub fn publish_with<E, F>(path: &Path, write: F) -> Result<(), E>
where
    F: FnOnce(&mut dyn Write) -> Result<(), E>,
    E: From<WriterError>,
{
    let temp = temp_path_for_process(path, std::process::id());
    let result = write_synced(&temp, write).and_then(|()| {
        fs::rename(&temp, path)
            .map_err(|e| WriterError::io(path, "rename a temp file onto", e).into())
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_parent(path);
    Ok(())
}

fn write_synced<E, F>(temp: &Path, write: F) -> Result<(), E>
where
    F: FnOnce(&mut dyn Write) -> Result<(), E>,
    E: From<WriterError>,
{
    let file = File::create(temp).map_err(|e| WriterError::io(temp, "create", e))?;
    let mut buffered = BufWriter::new(file);
    write(&mut buffered)?;
    let file = buffered
        .into_inner()
        .map_err(|e| WriterError::io(temp, "write", e.into_error()))?;
    file.sync_all()
        .map_err(|e| WriterError::io(temp, "fsync", e))?;
    Ok(())
}

/// Makes the rename itself durable. Some file systems refuse to fsync a directory; the
/// rename has still happened then, so that failure is not an error.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(handle) = File::open(dir) {
            let _ = handle.sync_all();
        }
    }
}

/// A fresh temp path beside `final_path`, marked as written by process `pid` of this
/// host. Public so a test can fake the leftovers of a killed process.
pub fn temp_path_for_process(final_path: &Path, pid: u32) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = final_path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kept = truncate_at_char(&name, TEMP_NAME_KEEP);
    let temp = format!(".{kept}.tmp.{}-{pid}.{n}", owner::host_id());
    final_path.with_file_name(temp)
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The `<host>-<pid>` owner tag when `name` is one of our temp file names.
fn temp_owner(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    let mut parts = rest.rsplitn(3, '.');
    let counter = parts.next()?;
    let tag = parts.next()?;
    let stem = parts.next()?;
    let ours = stem.ends_with(".tmp")
        && counter.bytes().all(|b| b.is_ascii_digit())
        && owner::parse_tag(tag).is_some();
    ours.then_some(tag)
}

/// Removes, under `root` (recursively, not following links), the temp files of ours whose
/// writer is gone; returns how many. Temp files of live writers are left alone.
pub fn clean_stale_temps(root: &Path) -> Result<usize, WriterError> {
    let mut removed = 0;
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(WriterError::io(&dir, "list", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| WriterError::io(&dir, "list", e))?;
            let kind = entry
                .file_type()
                .map_err(|e| WriterError::io(entry.path(), "inspect", e))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && remove_if_abandoned(&entry)? {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn remove_if_abandoned(entry: &fs::DirEntry) -> Result<bool, WriterError> {
    let name = entry.file_name();
    let Some(tag) = name.to_str().and_then(temp_owner) else {
        return Ok(false);
    };
    let path = entry.path();
    let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
        return Ok(false);
    };
    if !owner::is_abandoned(tag, modified, TEMP_MAX_AGE) {
        return Ok(false);
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(WriterError::io(path, "remove a stale temp file", e)),
    }
}

/// Refuses `path` when it is, or would be created, inside `input_root` (symbolic links
/// resolved as far as the path exists).
pub fn ensure_outside(path: &Path, input_root: &Path) -> Result<(), WriterError> {
    let input = resolve(input_root)?;
    let out = resolve(path)?;
    if out.starts_with(&input) {
        return Err(WriterError::InsideInput { out, input });
    }
    Ok(())
}

/// The canonical form of the longest existing ancestor of `path`, with the rest of the
/// path appended lexically.
fn resolve(path: &Path) -> Result<PathBuf, WriterError> {
    let absolute = std::path::absolute(path).map_err(|e| WriterError::io(path, "resolve", e))?;
    for ancestor in absolute.ancestors() {
        if let Ok(mut resolved) = ancestor.canonicalize() {
            let rest = absolute.strip_prefix(ancestor).unwrap_or(Path::new(""));
            for component in rest.components() {
                match component {
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => resolved.push(name),
                    _ => {}
                }
            }
            return Ok(resolved);
        }
    }
    Ok(absolute)
}
