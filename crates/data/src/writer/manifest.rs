//! Record sidecars, and the `metadata.jsonl` + `classes.json` rebuilt from them.
//!
//! Each finished output leaves `OUT/.semaug/records/<key>.json`, the exact JSON of its
//! metadata line. `metadata.jsonl` is never appended to: it is rebuilt from all sidecars,
//! sorted by `file_name`, so its bytes do not depend on the order in which outputs were
//! made, how often the run was restarted, or which shard made them.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::atomic::{publish, publish_with};
use super::layout::Layout;
use super::lock::FileLock;
use super::record::Record;
use super::WriterError;

/// The bytes of one metadata line (without the newline); also the sidecar's content.
fn record_json(record: &Record, path: &Path) -> Result<Vec<u8>, WriterError> {
    serde_json::to_vec(record).map_err(|source| WriterError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Publishes the sidecar that marks `record`'s output as finished.
pub(crate) fn publish_record(
    layout: &Layout,
    key: &str,
    record: &Record,
) -> Result<(), WriterError> {
    let path = layout.record(key);
    publish(&path, &record_json(record, &path)?)
}

/// The finished record of `key`, if any.
pub(crate) fn load_record(layout: &Layout, key: &str) -> Result<Option<Record>, WriterError> {
    let path = layout.record(key);
    match fs::read(&path) {
        Ok(bytes) => parse_record(&bytes, &path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WriterError::io(path, "read", e)),
    }
}

fn parse_record(bytes: &[u8], path: &Path) -> Result<Record, WriterError> {
    serde_json::from_slice(bytes).map_err(|source| WriterError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Every finished record, sorted by `file_name`.
pub(crate) fn load_all_records(layout: &Layout) -> Result<Vec<Record>, WriterError> {
    let dir = layout.records();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(WriterError::io(dir, "list", e)),
    };
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WriterError::io(&dir, "list", e))?;
        let name = entry.file_name();
        let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if key.starts_with('.') {
            continue; // a temp file
        }
        let path = entry.path();
        let bytes = fs::read(&path).map_err(|e| WriterError::io(&path, "read", e))?;
        let record = parse_record(&bytes, &path)?;
        if record.key()? != key {
            return Err(WriterError::BadKey {
                key: key.to_owned(),
                reason: format!(
                    "{} holds the record of {}",
                    path.display(),
                    record.file_name
                ),
            });
        }
        records.push(record);
    }
    records.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(records)
}

/// Checks every record's label and class name against `classes`.
fn check_classes(records: &[Record], classes: &[String]) -> Result<(), WriterError> {
    for record in records {
        let found = classes.get(record.label as usize);
        if found != Some(&record.class_name) {
            return Err(WriterError::ClassMismatch {
                file_name: record.file_name.clone(),
                label: record.label,
                class_name: record.class_name.clone(),
                found: match found {
                    Some(name) => format!("{name:?} at that index"),
                    None => format!("only {} classes", classes.len()),
                },
            });
        }
    }
    Ok(())
}

/// Rebuilds `classes.json` and `metadata.jsonl` from all sidecars present; returns the
/// number of records. Under a lock, so the last writer to finish publishes the union.
pub(crate) fn rebuild(layout: &Layout, classes: &[String]) -> Result<usize, WriterError> {
    let _lock = FileLock::acquire(&layout.locks().join("metadata.lock"))?;
    let records = load_all_records(layout)?;
    check_classes(&records, classes)?;
    let classes_path = layout.classes();
    let mut classes_json = serde_json::to_vec(classes).map_err(|source| WriterError::Json {
        path: classes_path.clone(),
        source,
    })?;
    classes_json.push(b'\n');
    publish(&classes_path, &classes_json)?;
    let metadata = layout.metadata();
    publish_with(&metadata, |w| {
        for record in &records {
            let line = record_json(record, &metadata)?;
            w.write_all(&line)
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| WriterError::io(&metadata, "write", e))?;
        }
        Ok::<(), WriterError>(())
    })?;
    Ok(records.len())
}

/// The records of a finished output folder, in `metadata.jsonl` order.
pub fn read_metadata(out: &Path) -> Result<Vec<Record>, WriterError> {
    let path = Layout::new(out).metadata();
    let text = fs::read_to_string(&path).map_err(|e| WriterError::io(&path, "read", e))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_record(line.as_bytes(), &path))
        .collect()
}

/// The class names of a finished output folder, in label order.
pub fn read_classes(out: &Path) -> Result<Vec<String>, WriterError> {
    let path = Layout::new(out).classes();
    let bytes = fs::read(&path).map_err(|e| WriterError::io(&path, "read", e))?;
    serde_json::from_slice(&bytes).map_err(|source| WriterError::Json { path, source })
}
