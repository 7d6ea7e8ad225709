//! Broken weights: one `error:` line naming the file, exit 1, nothing written, no panic.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{augment, s};
use crate::{fixture, photos};

const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

/// A copy of the tiny UNet folder whose weights file is `bytes`.
fn model_with_weights(dir: &Path, bytes: &[u8]) -> PathBuf {
    let model = dir.join("model");
    fs::create_dir_all(&model).unwrap();
    let source = fixture("unet2d-tiny/unet");
    fs::copy(source.join("config.json"), model.join("config.json")).unwrap();
    fs::write(model.join(WEIGHTS), bytes).unwrap();
    model
}

fn good_weights() -> Vec<u8> {
    fs::read(fixture("unet2d-tiny/unet").join(WEIGHTS)).unwrap()
}

/// The same file with its header rewritten by `edit`.
fn with_header(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let bytes = good_weights();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

fn assert_refused(bytes: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let model = model_with_weights(dir.path(), bytes);
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &["--model", s(&model), "--method", "splice"]);
    let line = outcome.assert_error_line(1);
    assert!(
        line.contains(WEIGHTS),
        "{what}: the error does not name the file: {line}"
    );
    assert!(
        !out.exists(),
        "{what}: a refused run created {}",
        out.display()
    );
}

#[test]
fn a_truncated_weights_file_is_refused() {
    let bytes = good_weights();
    assert_refused(&bytes[..bytes.len() / 2], "truncated");
}

#[test]
fn a_header_that_lies_about_tensor_sizes_is_refused() {
    let bytes = with_header(|header| {
        let (_, first) = header
            .as_object_mut()
            .unwrap()
            .iter_mut()
            .find(|(k, _)| *k != "__metadata__")
            .unwrap();
        // Claim twice the elements the byte range holds.
        let shape = first["shape"].as_array_mut().unwrap();
        let dim = shape[0].as_u64().unwrap();
        shape[0] = serde_json::json!(dim * 2);
    });
    assert_refused(&bytes, "shape larger than its bytes");
}

#[test]
fn a_huge_header_length_is_refused_without_allocating_it() {
    let mut bytes = good_weights();
    bytes[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert_refused(&bytes, "huge header length");
}

#[test]
fn pickle_weights_get_advice_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let model = dir.path().join("model");
    fs::create_dir_all(&model).unwrap();
    fs::copy(
        fixture("unet2d-tiny/unet/config.json"),
        model.join("config.json"),
    )
    .unwrap();
    fs::write(model.join("diffusion_pytorch_model.bin"), b"\x80\x02pickle").unwrap();
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &["--model", s(&model), "--method", "splice"]);
    let line = outcome.assert_error_line(1);
    assert!(
        line.contains("safetensors") && line.contains(".bin"),
        "{line}"
    );
    assert!(!out.exists());
}
