//! Parity with diffusers: the `unet2d-tiny` fixture's `forward` case, computed by diffusers
//! 0.42.1 `UNet2DModel` in float32, must be reproduced within the case's `suggested_atol`.

mod common;

use candle_core::{Device, Tensor};
use common::{fixture_model_dir, golden_forward, max_abs_diff};
use semaug_models::unet::UNet2DModel;

/// `suggested_atol` per output, from `golden/forward.json`.
fn atol(output: &str) -> f32 {
    let path = common::fixture_dir().join("golden/forward.json");
    let text = std::fs::read_to_string(path).expect("forward.json readable");
    let json: serde_json::Value = serde_json::from_str(&text).expect("forward.json parses");
    json["outputs"][output]["suggested_atol"]
        .as_f64()
        .expect("suggested_atol present") as f32
}

fn check(name: &str, got: &Tensor, golden: &Tensor) {
    let diff = max_abs_diff(got, golden);
    let tol = atol(name);
    println!("{name}: max |rust - diffusers| = {diff:.3e} (atol {tol:.0e})");
    assert!(diff <= tol, "{name}: max abs diff {diff} > atol {tol}");
}

#[test]
fn forward_matches_diffusers_per_sample_timesteps() {
    let g = golden_forward();
    let model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads");
    let out = model
        .forward(&g["x"], &g["timesteps"], Some(&g["class_labels"]))
        .expect("forward");
    check("sample", &out, &g["sample"]);
}

#[test]
fn forward_matches_diffusers_scalar_timestep() {
    let g = golden_forward();
    let model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads");
    let t = Tensor::new(250f32, &Device::Cpu).expect("scalar");
    let out = model
        .forward(&g["x"], &t, Some(&g["class_labels"]))
        .expect("forward");
    check("sample_scalar_t250", &out, &g["sample_scalar_t250"]);
}

#[test]
fn conditioning_parts_match_diffusers() {
    let g = golden_forward();
    let model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads");
    let cond = model
        .conditioning(&g["timesteps"], Some(&g["class_labels"]), 4)
        .expect("conditioning");
    check("debug_time_proj", &cond.time_proj, &g["debug_time_proj"]);
    check(
        "debug_time_embedding",
        &cond.time_embedding,
        &g["debug_time_embedding"],
    );
    let class = cond.class_embedding.expect("class-conditional");
    check("debug_class_embedding", &class, &g["debug_class_embedding"]);
}

#[test]
fn u32_labels_give_the_same_output_as_i64() {
    let g = golden_forward();
    let model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads");
    let labels_u32 = g["class_labels"]
        .to_dtype(candle_core::DType::U32)
        .expect("cast");
    let cond_i64 = model.conditioning(&g["timesteps"], Some(&g["class_labels"]), 4);
    let cond_u32 = model.conditioning(&g["timesteps"], Some(&labels_u32), 4);
    let (a, b) = (cond_i64.expect("i64"), cond_u32.expect("u32"));
    assert_eq!(max_abs_diff(&a.combined, &b.combined), 0.0);
}
