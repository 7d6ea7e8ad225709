//! One output's record (its row in `metadata.jsonl`) and the sample key derived from its
//! file name.
//!
//! # The key rule
//!
//! A WebDataset key may not contain a dot and our record sidecars are named after it,
//! so it may not contain a slash either. [`sample_key`] maps `file_name` to a key by:
//! dropping the `.png` suffix; joining the path components with `__`; keeping ASCII
//! letters, digits and `-`; keeping `_` only where it is alone and inside a component
//! (so `__` can only be a separator); writing every other byte, including such `_`, `.`,
//! `~`, spaces and UTF-8, as `~` plus two lowercase hex digits. Examples:
//! `cat/0001_perturb_s0.png` -> `cat__0001_perturb_s0`,
//! `sea turtle/a.b.png` -> `sea~20turtle__a~2eb`.
//! The rule is injective ([`file_name_from_key`] inverts it), so keys are unique whenever
//! file names are, and stable since they depend on the file name alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::WriterError;

/// Longest key accepted; keeps `<key>.json` and its temp name under 255 bytes.
pub const MAX_KEY_LEN: usize = 200;

/// An output image's label and provenance. Field order is the column order of
/// `metadata.jsonl` (Hugging Face `imagefolder` reads `file_name` and `label`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Path relative to the output root, `/`-separated, ending in `.png`
    /// (e.g. `cat/0001_perturb_s0.png`).
    pub file_name: String,
    /// Class index into `classes.json`.
    pub label: u32,
    pub class_name: String,
    /// The source image: its id or path relative to the input root.
    pub source: String,
    pub source_sha256: String,
    pub method: String,
    pub params: serde_json::Value,
    pub seed: u64,
    pub model: Option<String>,
    pub model_sha256: Option<String>,
    pub tool_version: String,
    /// Index of this output among the outputs made from the same source.
    pub variant: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Record {
    /// This record's sample key (see the module doc).
    pub fn key(&self) -> Result<String, WriterError> {
        sample_key(&self.file_name)
    }
}

/// The sample key of `file_name` (see the module doc for the rule).
pub fn sample_key(file_name: &str) -> Result<String, WriterError> {
    let bad = |reason: &str| WriterError::BadFileName {
        file_name: file_name.to_owned(),
        reason: reason.to_owned(),
    };
    let stem = file_name
        .strip_suffix(".png")
        .ok_or_else(|| bad("it must end in .png"))?;
    let mut key = String::new();
    for (i, component) in stem.split('/').enumerate() {
        check_component(component).map_err(bad)?;
        if i > 0 {
            key.push_str("__");
        }
        encode_component(component, &mut key);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad(&format!(
            "its key would be {} bytes, over {MAX_KEY_LEN}; use a shorter name",
            key.len()
        )));
    }
    Ok(key)
}

fn check_component(component: &str) -> Result<(), &'static str> {
    match component {
        "" => Err("it must be a relative path without empty parts (no leading or double /)"),
        _ if component.starts_with('.') => {
            Err("no part may start with . (no . or .., and dataset loaders skip hidden files)")
        }
        _ if component.contains('\\') => Err("use / as the separator, not \\"),
        _ if component.chars().any(char::is_control) => Err("it contains a control character"),
        _ => Ok(()),
    }
}

fn encode_component(component: &str, key: &mut String) {
    let bytes = component.as_bytes();
    for (i, &byte) in bytes.iter().enumerate() {
        let literal = match byte {
            b'_' => {
                let inside = i > 0 && i + 1 < bytes.len();
                inside && bytes[i - 1] != b'_' && bytes[i + 1] != b'_'
            }
            _ => byte.is_ascii_alphanumeric() || byte == b'-',
        };
        if literal {
            key.push(char::from(byte));
        } else {
            let _ = write!(key, "~{byte:02x}");
        }
    }
}

/// The file name a key was made from; refuses strings [`sample_key`] never produces.
pub fn file_name_from_key(key: &str) -> Result<String, WriterError> {
    let bad = |reason: &str| WriterError::BadKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = key.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len() + 4);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = key
                    .get(i + 1..i + 3)
                    .ok_or_else(|| bad("truncated ~ escape"))?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| bad("bad ~ escape"))?;
                decoded.push(byte);
                i += 3;
            }
            b'_' if bytes.get(i + 1) == Some(&b'_') => {
                decoded.push(b'/');
                i += 2;
            }
            byte => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    let mut file_name = String::from_utf8(decoded).map_err(|_| bad("escapes are not UTF-8"))?;
    file_name.push_str(".png");
    // Canonical form only: exactly one key per file name.
    match sample_key(&file_name) {
        Ok(again) if again == key => Ok(file_name),
        _ => Err(bad("not in the canonical form of the key rule")),
    }
}
