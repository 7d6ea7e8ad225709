//! Checking a safetensors file's header before any tensor is read, and finding a
//! component folder's weights file (safetensors only: pickle formats are refused).
//!
//! A safetensors file is `u64 N (little endian) | N bytes of JSON header | data`. The header
//! maps each tensor name to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative
//! to the data section), plus an optional `__metadata__` map of strings. The check reads
//! only the first `8 + N` bytes and insists on what the reader will rely on: `N` sane
//! (at most 100 MB, as the safetensors crate) and inside the file, valid JSON, every dtype
//! known, every byte range inside the data section, `end - begin = elements x dtype size`,
//! and the ranges tiling the data section exactly (no overlap, no gap, nothing left over).
//! A truncated download or a header that lies becomes a one-line error naming the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::PretrainedError;

/// The largest header accepted (the safetensors crate's own limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Weight file extensions that are PyTorch pickles (never read).
pub const PICKLE_EXTENSIONS: [&str; 4] = ["bin", "ckpt", "pt", "pth"];

/// One tensor entry of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    /// `[begin, end)` in bytes, relative to the data section.
    pub data_offsets: (u64, u64),
}

/// A validated safetensors header.
#[derive(Debug, Clone)]
pub struct SafetensorsHeader {
    pub path: PathBuf,
    /// Length of the whole file in bytes.
    pub file_len: u64,
    /// `N`, the JSON header's length.
    pub header_len: u64,
    /// Tensors in data order.
    pub tensors: Vec<TensorEntry>,
    /// The `__metadata__` map (empty when absent).
    pub metadata: BTreeMap<String, String>,
}

/// Bits per element of a safetensors dtype name (the dtypes safetensors 0.8 defines).
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// Reads and validates the header of the safetensors file at `path`.
pub fn check_safetensors(path: &Path) -> Result<SafetensorsHeader, PretrainedError> {
    let bad = |detail: String| PretrainedError::Safetensors {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = File::open(path).map_err(|e| PretrainedError::io(path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| PretrainedError::io(path, e))?
        .len();
    if file_len < 8 {
        return Err(bad(format!(
            "{file_len} bytes, too short for the 8-byte header length (truncated?)"
        )));
    }
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|e| PretrainedError::io(path, e))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(bad(format!(
            "header length {header_len} exceeds the {MAX_HEADER_LEN}-byte limit (corrupt file?)"
        )));
    }
    if 8 + header_len > file_len {
        return Err(bad(format!(
            "header length {header_len} runs past the end of the {file_len}-byte file \
             (truncated download?)"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| PretrainedError::io(path, e))?;
    let data_len = file_len - 8 - header_len;
    let (tensors, metadata) = parse_header(&header, data_len).map_err(bad)?;
    Ok(SafetensorsHeader {
        path: path.to_path_buf(),
        file_len,
        header_len,
        tensors,
        metadata,
    })
}

/// The tensor entries (in data order) and metadata of a header, checked against a data
/// section of `data_len` bytes.
fn parse_header(
    header: &[u8],
    data_len: u64,
) -> Result<(Vec<TensorEntry>, BTreeMap<String, String>), String> {
    let json: serde_json::Map<String, Value> =
        serde_json::from_slice(header).map_err(|e| format!("header is not a JSON object: {e}"))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(json.len());
    for (name, value) in json {
        if name == "__metadata__" {
            metadata = parse_metadata(&value)?;
        } else {
            tensors.push(parse_entry(name, &value)?);
        }
    }
    tensors.sort_by_key(|t| t.data_offsets);
    check_tiling(&tensors, data_len)?;
    Ok((tensors, metadata))
}

fn parse_metadata(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = value else {
        return Err("`__metadata__` is not a JSON object".into());
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("`__metadata__.{k}` is not a string")),
        })
        .collect()
}

fn parse_entry(name: String, value: &Value) -> Result<TensorEntry, String> {
    let field = |key: &str| {
        value
            .get(key)
            .ok_or_else(|| format!("tensor `{name}` has no `{key}`"))
    };
    let dtype = field("dtype")?
        .as_str()
        .ok_or_else(|| format!("tensor `{name}`: `dtype` is not a string"))?
        .to_string();
    let bits =
        dtype_bits(&dtype).ok_or_else(|| format!("tensor `{name}` has unknown dtype `{dtype}`"))?;
    let shape = unsigned_list(field("shape")?)
        .ok_or_else(|| format!("tensor `{name}`: `shape` is not a list of sizes"))?;
    let offsets = unsigned_list(field("data_offsets")?)
        .filter(|o| o.len() == 2 && o[0] <= o[1])
        .ok_or_else(|| {
            format!("tensor `{name}`: `data_offsets` is not [begin, end] with begin <= end")
        })?;
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(bits))
        .filter(|b| b % 8 == 0)
        .map(|b| b / 8)
        .ok_or_else(|| {
            format!("tensor `{name}`: shape {shape:?} of {dtype} has no valid byte size (overflow or a partial byte)")
        })?;
    let stored = offsets[1] - offsets[0];
    if stored != elements {
        return Err(format!(
            "tensor `{name}` ({dtype} {shape:?}) needs {elements} bytes but its offsets give {stored}"
        ));
    }
    let shape = shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("tensor `{name}`: dimension {d} too large"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorEntry {
        name,
        dtype,
        shape,
        data_offsets: (offsets[0], offsets[1]),
    })
}

fn unsigned_list(value: &Value) -> Option<Vec<u64>> {
    value
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<_>>>()
}

/// Sorted ranges must cover `0..data_len` exactly, one after the other.
fn check_tiling(tensors: &[TensorEntry], data_len: u64) -> Result<(), String> {
    let mut end = 0u64;
    let mut previous: Option<&str> = None;
    for t in tensors {
        let (begin, stop) = t.data_offsets;
        if stop > data_len {
            return Err(format!(
                "tensor `{}` ends at byte {stop}, past the {data_len}-byte data section \
                 (truncated download?)",
                t.name
            ));
        }
        if begin < end {
            return Err(format!(
                "tensor `{}` (bytes {begin}..{stop}) overlaps `{}`",
                t.name,
                previous.unwrap_or("?")
            ));
        }
        if begin > end {
            return Err(format!("bytes {end}..{begin} belong to no tensor"));
        }
        end = stop;
        previous = Some(&t.name);
    }
    if end != data_len {
        return Err(format!(
            "the data section has {data_len} bytes but the tensors end at byte {end}"
        ));
    }
    Ok(())
}

/// The first of `names` present in `dir`, validated; when none is, a clear error: pickle
/// weights are named and refused, otherwise the expected names are listed.
pub fn component_weights(dir: &Path, names: &[&str]) -> Result<SafetensorsHeader, PretrainedError> {
    if let Some(path) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
        return check_safetensors(&path);
    }
    if let Some(found) = pickle_file(dir) {
        return Err(PretrainedError::PickleWeights {
            dir: dir.to_path_buf(),
            found,
        });
    }
    Err(PretrainedError::MissingWeights {
        dir: dir.to_path_buf(),
        expected: names.join(", "),
    })
}

/// The name of a pickle weights file in `dir`, if any.
fn pickle_file(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e))
        })
        .collect();
    names.sort();
    names.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_sizes_cover_the_usual_weights() {
        assert_eq!(dtype_bits("F32"), Some(32));
        assert_eq!(dtype_bits("BF16"), Some(16));
        assert_eq!(dtype_bits("F4"), Some(4));
        assert_eq!(dtype_bits("Q4_K"), None);
    }

    #[test]
    fn sub_byte_tensors_must_fill_whole_bytes() {
        let header = br#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
        assert!(parse_header(header, 2).is_err());
        let header = br#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}"#;
        assert!(parse_header(header, 2).is_ok());
    }
}
