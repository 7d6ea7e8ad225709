//! The golden-case helpers every diffusers-fixture test shares; included by each fixture's
//! module (`sd_common`, `sd3_common`), whose `FIXTURE` names the folder under
//! `../shared/fixtures`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The fixture folder (shared data beside the repository).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
    .join(super::FIXTURE)
}

/// The tensors of golden case `case`.
pub fn case_tensors(case: &str) -> HashMap<String, Tensor> {
    let path = fixture_dir().join(format!("golden/{case}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu).expect("golden case readable")
}

/// The JSON description of golden case `case`.
pub fn case_json(case: &str) -> serde_json::Value {
    let path = fixture_dir().join(format!("golden/{case}.json"));
    let text = std::fs::read_to_string(path).expect("case JSON readable");
    serde_json::from_str(&text).expect("case JSON parses")
}

/// `suggested_atol` of output `output` of `case`.
pub fn atol(case: &str, output: &str) -> f32 {
    case_json(case)["outputs"][output]["suggested_atol"]
        .as_f64()
        .expect("suggested_atol present") as f32
}

/// max |a - b| over all elements (f32).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F32).expect("f32");
    let b = b.to_dtype(DType::F32).expect("f32");
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference computable")
}

/// Asserts `max |got - golden| <= suggested_atol` for `case`/`output`, printing both.
pub fn check(case: &str, output: &str, got: &Tensor, golden: &Tensor) {
    let diff = max_abs_diff(got, golden);
    let tol = atol(case, output);
    println!("{case}/{output}: max |rust - diffusers| = {diff:.3e} (atol {tol:.0e})");
    assert!(
        diff <= tol,
        "{case}/{output}: max abs diff {diff} > atol {tol}"
    );
}

/// The rows of an integer tensor as u32.
pub fn id_rows(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::U32)
        .and_then(|t| t.to_vec2())
        .expect("integer ids")
}
