//! Shared helpers for the UNet tests: fixture paths, tensor comparison, seeded inputs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use semaug_core::seeds::{label, Stream};

/// The diffusers `unet2d-tiny` fixture (shared data beside the repository).
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/unet2d-tiny"
    ))
}

pub fn fixture_model_dir() -> PathBuf {
    fixture_dir().join("unet")
}

/// The tensors of the golden `forward` case.
pub fn golden_forward() -> HashMap<String, Tensor> {
    let path = fixture_dir().join("golden/forward.safetensors");
    candle_core::safetensors::load(&path, &Device::Cpu).expect("golden forward case readable")
}

/// max |a - b| over all elements.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference computable")
}

/// Seeded standard-normal tensor.
pub fn normal(shape: &[usize], seed: u64) -> Tensor {
    Stream::new(seed, 0, label("models/tests"), 0)
        .normal_tensor(shape, &Device::Cpu)
        .expect("tensor")
}
