//! `--model`: the shipped embedded model by default, or a model directory on disk.

use std::path::Path;

use anyhow::Context;
use semaug_models::embedded::{shipped, EmbeddedGenerator};

/// `embedded` is the model inside this binary; anything else is a diffusers
/// `UNet2DModel` directory (config.json + diffusion_pytorch_model.safetensors).
pub fn load(spec: &str) -> anyhow::Result<EmbeddedGenerator> {
    if spec == shipped::NAME {
        return shipped::load().context("cannot load the shipped model");
    }
    let dir = Path::new(spec);
    if !dir.is_dir() {
        return Err(crate::UsageError(format!(
            "--model {spec}: not `embedded` and not a model directory (a diffusers \
             UNet2DModel folder with config.json)"
        ))
        .into());
    }
    EmbeddedGenerator::load(dir).with_context(|| format!("cannot load model {}", dir.display()))
}
