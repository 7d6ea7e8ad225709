//! The run fingerprint in `OUT/.semaug/run.json`: resuming into a folder is allowed only
//! with the settings it was started with, since mixing outputs of two settings in one
//! dataset would silently break "same bytes as an uninterrupted run".

use std::fs;
use std::io::ErrorKind;

use serde_json::Value;

use super::atomic::publish;
use super::layout::Layout;
use super::WriterError;

/// At most this many differing settings are named in the error.
const MAX_LISTED: usize = 5;

/// Writes `expected` as the folder's fingerprint, or checks it equals the one there.
pub(crate) fn check_or_write(layout: &Layout, expected: &Value) -> Result<(), WriterError> {
    if read(layout)?.is_none() {
        let mut bytes =
            serde_json::to_vec_pretty(expected).map_err(|source| WriterError::Json {
                path: layout.run_json(),
                source,
            })?;
        bytes.push(b'\n');
        publish(&layout.run_json(), &bytes)?;
    }
    // Read back even after writing: another shard may have published first.
    let found = read(layout)?.unwrap_or(Value::Null);
    if &found != expected {
        return Err(WriterError::SettingsChanged {
            out: layout.out().to_owned(),
            detail: describe_difference(&found, expected),
        });
    }
    Ok(())
}

fn read(layout: &Layout) -> Result<Option<Value>, WriterError> {
    let path = layout.run_json();
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| WriterError::Json { path, source }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(WriterError::io(path, "read", e)),
    }
}

/// `settings.seed: 1 -> 2, format.kind: "imagefolder" -> "webdataset"`.
pub(crate) fn describe_difference(old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    collect_differences("", old, new, &mut lines);
    let extra = lines.len().saturating_sub(MAX_LISTED);
    lines.truncate(MAX_LISTED);
    let mut text = lines.join(", ");
    if extra > 0 {
        text.push_str(&format!(" and {extra} more"));
    }
    text
}

fn collect_differences(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let absent = Value::Null;
                let (x, y) = (a.get(key), b.get(key));
                if x != y {
                    let (x, y) = (x.unwrap_or(&absent), y.unwrap_or(&absent));
                    collect_differences(&child, x, y, lines);
                }
            }
        }
        _ if old != new => {
            let name = if path.is_empty() { "settings" } else { path };
            lines.push(format!("{name}: {} -> {}", short(old), short(new)));
        }
        _ => {}
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
