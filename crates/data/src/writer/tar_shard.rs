//! Deterministic WebDataset tar members, and reading samples back.
//!
//! A sample is three members in this order: `<key>.cls` (the label as decimal text),
//! `<key>.json` (the record) and `<key>.png`. Every header is a GNU header with mtime 0,
//! uid/gid 0, mode 0644 and no user or group names, so equal samples give equal bytes;
//! names over 100 bytes use the GNU long-name entry, which is deterministic too.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use tar::{Builder, EntryType, Header};

use super::record::Record;
use super::WriterError;

/// One sample's members as read from a shard.
#[derive(Debug, Default)]
pub(crate) struct RawSample {
    pub key: String,
    pub cls: Option<Vec<u8>>,
    pub json: Option<Vec<u8>>,
    pub png: Option<Vec<u8>>,
}

/// Appends the three members of one sample.
pub(crate) fn append_sample<W: Write>(
    builder: &mut Builder<W>,
    key: &str,
    record: &Record,
    png: &[u8],
) -> std::io::Result<()> {
    let json = serde_json::to_vec(record)?;
    append_member(
        builder,
        &format!("{key}.cls"),
        record.label.to_string().as_bytes(),
    )?;
    append_member(builder, &format!("{key}.json"), &json)?;
    append_member(builder, &format!("{key}.png"), png)
}

fn append_member<W: Write>(
    builder: &mut Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    builder.append_data(&mut header, name, data)
}

/// Calls `visit` with each sample of the shard at `path`, in archive order. Members of a
/// sample must be adjacent and keys strictly increasing, as our writer makes them;
/// members with other extensions are ignored.
pub(crate) fn for_each_sample<F>(path: &Path, mut visit: F) -> Result<(), WriterError>
where
    F: FnMut(RawSample) -> Result<(), WriterError>,
{
    let bad = |detail: String| WriterError::BadShard {
        path: path.to_owned(),
        detail,
    };
    let file = File::open(path).map_err(|e| WriterError::io(path, "open", e))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries()
        .map_err(|e| WriterError::io(path, "read", e))?;
    let mut current = RawSample::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| WriterError::io(path, "read", e))?;
        let name = entry
            .path()
            .map_err(|e| WriterError::io(path, "read", e))?
            .to_string_lossy()
            .into_owned();
        let (key, extension) = name
            .split_once('.')
            .filter(|(key, _)| !key.is_empty() && !key.contains('/'))
            .ok_or_else(|| bad(format!("member {name:?} is not <key>.<extension>")))?;
        if key != current.key {
            if key < current.key.as_str() {
                return Err(bad(format!(
                    "key {key:?} after {:?}: not sorted",
                    current.key
                )));
            }
            if !current.key.is_empty() {
                visit(std::mem::take(&mut current))?;
            }
            current.key = key.to_owned();
        }
        let slot = match extension {
            "cls" => &mut current.cls,
            "json" => &mut current.json,
            "png" => &mut current.png,
            _ => continue,
        };
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| WriterError::io(path, "read", e))?;
        *slot = Some(data);
    }
    if !current.key.is_empty() {
        visit(current)?;
    }
    Ok(())
}
