//! Loading broken or mismatched diffusers directories gives typed errors naming the file.

mod common;

use std::fs;
use std::path::Path;

use candle_core::Device;
use common::fixture_model_dir;
use semaug_models::unet::{UNet2DConfig, UNet2DModel, UnetError, CONFIG_FILE, WEIGHTS_FILE};

fn copy_fixture(dir: &Path) {
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        fs::copy(fixture_model_dir().join(file), dir.join(file)).expect("copy");
    }
}

fn load(dir: &Path) -> UnetError {
    UNet2DModel::load(dir, &Device::Cpu).expect_err("load should fail")
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    match load(dir.path()) {
        UnetError::MissingFile { path, .. } => assert!(path.ends_with(CONFIG_FILE)),
        other => panic!("{other:?}"),
    }
    fs::copy(
        fixture_model_dir().join(CONFIG_FILE),
        dir.path().join(CONFIG_FILE),
    )
    .expect("copy");
    match load(dir.path()) {
        UnetError::MissingFile { path, .. } => assert!(path.ends_with(WEIGHTS_FILE)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_fixture(dir.path());
    fs::write(dir.path().join(WEIGHTS_FILE), b"not a safetensors file").expect("write");
    match load(dir.path()) {
        UnetError::Safetensors { path, .. } => assert!(path.ends_with(WEIGHTS_FILE)),
        other => panic!("{other:?}"),
    }
    fs::write(dir.path().join(CONFIG_FILE), b"{ \"layers_per_block\": ").expect("write");
    match load(dir.path()) {
        UnetError::ConfigJson { path, .. } => assert!(path.ends_with(CONFIG_FILE)),
        other => panic!("{other:?}"),
    }
    let fourier = r#"{"time_embedding_type": "fourier"}"#;
    fs::write(dir.path().join(CONFIG_FILE), fourier).expect("write");
    match load(dir.path()) {
        UnetError::InvalidConfigFile { path, source } => {
            assert!(path.ends_with(CONFIG_FILE));
            assert_eq!(source.field, "time_embedding_type");
        }
        other => panic!("{other:?}"),
    }
}

fn write_config(dir: &Path, cfg: &UNet2DConfig) {
    fs::write(dir.join(CONFIG_FILE), cfg.to_json().expect("json")).expect("write");
}

#[test]
fn weights_that_do_not_fit_the_config_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_fixture(dir.path());
    // More layers than the checkpoint has: a missing weight.
    write_config(
        dir.path(),
        &UNet2DConfig {
            layers_per_block: 2,
            ..UNet2DConfig::test()
        },
    );
    match load(dir.path()) {
        UnetError::MissingWeight { name, .. } => assert!(name.contains("resnets.1"), "{name}"),
        other => panic!("{other:?}"),
    }
    // No mid-block attention in the config, but it is in the file: unexpected weights.
    write_config(
        dir.path(),
        &UNet2DConfig {
            add_attention: false,
            ..UNet2DConfig::test()
        },
    );
    match load(dir.path()) {
        UnetError::UnexpectedWeights { names, .. } => {
            assert_eq!(names.len(), 10);
            assert!(names
                .iter()
                .all(|n| n.starts_with("mid_block.attentions.0.")));
        }
        other => panic!("{other:?}"),
    }
    // More class rows than stored: a shape mismatch.
    write_config(
        dir.path(),
        &UNet2DConfig {
            num_class_embeds: Some(12),
            ..UNet2DConfig::test()
        },
    );
    match load(dir.path()) {
        UnetError::WeightShape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "class_embedding.weight");
            assert_eq!((expected, found), (vec![12, 128], vec![11, 128]));
        }
        other => panic!("{other:?}"),
    }
}
