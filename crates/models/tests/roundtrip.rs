//! Save/load round trips of diffusers directories, and of config.json.

mod common;

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::{fixture_model_dir, golden_forward, max_abs_diff, normal};
use semaug_models::unet::{
    read_config, sha256_hex, weights_sha256, UNet2DConfig, UNet2DModel, WeightsDtype, CONFIG_FILE,
    WEIGHTS_FILE,
};

fn fixture_keys() -> BTreeSet<String> {
    let path = fixture_model_dir().join(WEIGHTS_FILE);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("fixture weights")
        .into_keys()
        .collect()
}

#[test]
fn weight_names_are_exactly_the_diffusers_state_dict() {
    let model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads");
    let ours: BTreeSet<String> = model.weights().keys().cloned().collect();
    assert_eq!(ours, fixture_keys());
    // A freshly initialised model of the same preset has the same names and shapes.
    let varmap = VarMap::new();
    let fresh =
        UNet2DModel::trainable(&UNet2DConfig::test(), &varmap, 1, &Device::Cpu).expect("trainable");
    for (name, tensor) in model.weights() {
        assert_eq!(fresh.weights()[name].dims(), tensor.dims(), "{name}");
    }
    assert_eq!(fresh.weights().len(), model.weights().len());
}

#[test]
fn test_preset_is_the_fixture_architecture() {
    let fixture = read_config(&fixture_model_dir()).expect("fixture config");
    assert_eq!(UNet2DConfig::test(), fixture);
}

#[test]
fn save_then_load_gives_identical_outputs_and_hash() {
    let g = golden_forward();
    let mut model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("loads");
    let original_hash = model.weights_sha256().expect("hash").to_string();
    assert_eq!(
        original_hash,
        weights_sha256(&fixture_model_dir()).expect("hash")
    );
    let before = model
        .forward(&g["x"], &g["timesteps"], Some(&g["class_labels"]))
        .expect("forward");

    let dir = tempfile::tempdir().expect("tempdir");
    let hash = model.save(dir.path(), WeightsDtype::F32).expect("save");
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).expect("written");
    assert_eq!(hash, sha256_hex(&bytes));
    // No temporary files are left behind.
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([CONFIG_FILE.into(), WEIGHTS_FILE.into()])
    );

    let reloaded = UNet2DModel::load(dir.path(), &Device::Cpu).expect("reload");
    assert_eq!(reloaded.weights_sha256(), Some(hash.as_str()));
    let after = reloaded
        .forward(&g["x"], &g["timesteps"], Some(&g["class_labels"]))
        .expect("forward");
    assert_eq!(max_abs_diff(&before, &after), 0.0);
}

#[test]
fn f16_save_stores_rounded_weights_and_loads_as_f32() {
    let mut model = UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("loads");
    let dir = tempfile::tempdir().expect("tempdir");
    model.save(dir.path(), WeightsDtype::F16).expect("save f16");
    let raw = candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu)
        .expect("readable");
    assert!(raw.values().all(|t| t.dtype() == DType::F16));
    let reloaded = UNet2DModel::load(dir.path(), &Device::Cpu).expect("reload f16");
    for (name, w) in model.weights() {
        let rounded = w.to_dtype(DType::F16).and_then(|t| t.to_dtype(DType::F32));
        let got = &reloaded.weights()[name];
        assert_eq!(got.dtype(), DType::F32);
        assert_eq!(max_abs_diff(got, &rounded.expect("round")), 0.0, "{name}");
    }
}

#[test]
fn trained_model_round_trips_through_a_directory() {
    let varmap = VarMap::new();
    let cfg = UNet2DConfig::test();
    let mut model = UNet2DModel::trainable(&cfg, &varmap, 7, &Device::Cpu).expect("build");
    let x = normal(&[2, 3, 16, 16], 1);
    let t = Tensor::new(&[10f32, 900.0], &Device::Cpu).expect("t");
    let y = Tensor::new(&[1u32, 10], &Device::Cpu).expect("labels");
    let before = model.forward(&x, &t, Some(&y)).expect("forward");
    let dir = tempfile::tempdir().expect("tempdir");
    model.save(dir.path(), WeightsDtype::F32).expect("save");
    let loaded = UNet2DModel::load(dir.path(), &Device::Cpu).expect("load");
    assert_eq!(loaded.config(), &cfg);
    let after = loaded.forward(&x, &t, Some(&y)).expect("forward");
    assert_eq!(max_abs_diff(&before, &after), 0.0);
}

/// Same keys; equal values, numbers compared as f64 (diffusers writes `1`, we may write `1.0`).
fn assert_same_json(a: &serde_json::Value, b: &serde_json::Value) {
    let (a, b) = (
        a.as_object().expect("object"),
        b.as_object().expect("object"),
    );
    let keys_a: BTreeSet<&String> = a.keys().collect();
    let keys_b: BTreeSet<&String> = b.keys().collect();
    assert_eq!(keys_a, keys_b);
    for (key, va) in a {
        let vb = &b[key];
        match (va.as_f64(), vb.as_f64()) {
            (Some(x), Some(y)) => assert_eq!(x, y, "{key}"),
            _ => assert_eq!(va, vb, "{key}"),
        }
    }
}

#[test]
fn config_json_round_trip_keeps_diffusers_keys_and_unknown_keys() {
    let text = std::fs::read_to_string(fixture_model_dir().join(CONFIG_FILE)).expect("read");
    let original: serde_json::Value = serde_json::from_str(&text).expect("json");
    let config = UNet2DConfig::from_json(&text).expect("parses");
    let written: serde_json::Value =
        serde_json::from_str(&config.to_json().expect("writes")).expect("json");
    assert_same_json(&original, &written);

    let mut with_extra = original.clone();
    with_extra["_name_or_path"] = serde_json::json!("google/ddpm-cifar10-32");
    let config = UNet2DConfig::from_json(&with_extra.to_string()).expect("parses");
    let written: serde_json::Value =
        serde_json::from_str(&config.to_json().expect("writes")).expect("json");
    assert_same_json(&with_extra, &written);
}

#[test]
fn written_config_has_sorted_keys_like_diffusers() {
    let text = UNet2DConfig::small().to_json().expect("json");
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(keys.first(), Some(&"_class_name"));
    assert!(text.ends_with("}\n"));
}
