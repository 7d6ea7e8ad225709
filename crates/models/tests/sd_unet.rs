//! The text-conditioned UNet against diffusers on the `sd-tiny` fixture (`unet` case):
//! epsilon at t = 999, 500, 1 for an [uncond, cond] batch, and every intermediate at t = 500.

mod sd_common;

use candle_core::{Device, Tensor};
use sd_common::{case_tensors, check, sd_tiny};
use semaug_models::sd::{SdError, UNet2DConditionModel};

const CASE: &str = "unet";

fn unet() -> UNet2DConditionModel {
    UNet2DConditionModel::load(&sd_tiny().join("unet"), &Device::Cpu).expect("unet loads")
}

/// The case's batch: the latent twice, `[uncond, cond]` embeddings.
fn inputs(g: &std::collections::HashMap<String, Tensor>) -> (Tensor, Tensor) {
    let latent = Tensor::cat(&[&g["latent"], &g["latent"]], 0).expect("latents");
    let context = Tensor::cat(&[&g["uncond_embeds"], &g["cond_embeds"]], 0).expect("context");
    (latent, context)
}

#[test]
fn epsilon_matches_diffusers_at_three_timesteps() {
    let g = case_tensors(CASE);
    let unet = unet();
    let (latent, context) = inputs(&g);
    for t in [999i64, 500, 1] {
        let timestep = Tensor::new(t, &Device::Cpu).expect("scalar");
        let eps = unet.forward(&latent, &timestep, &context).expect("forward");
        let name = format!("noise_pred_t{t}");
        check(CASE, &name, &eps, &g[&name]);
    }
}

#[test]
fn intermediates_match_diffusers_at_t500() {
    let g = case_tensors(CASE);
    let unet = unet();
    let (latent, context) = inputs(&g);
    let t = Tensor::new(500i64, &Device::Cpu).expect("scalar");
    let out = unet
        .forward_with_intermediates(&latent, &t, &context)
        .expect("forward");
    let pairs = [
        ("debug_t500_time_proj", &out.time_proj),
        ("debug_t500_time_embedding", &out.time_embedding),
        ("debug_t500_conv_in", &out.conv_in),
        ("debug_t500_down_blocks_0", &out.down_blocks[0]),
        ("debug_t500_down_blocks_1", &out.down_blocks[1]),
        ("debug_t500_mid_block", &out.mid_block),
        ("debug_t500_up_blocks_0", &out.up_blocks[0]),
        ("debug_t500_up_blocks_1", &out.up_blocks[1]),
    ];
    for (name, got) in pairs {
        check(CASE, name, got, &g[name]);
    }
    // Per-sample timesteps give the same as the broadcast scalar.
    let per_sample = Tensor::new(&[500f32, 500.0], &Device::Cpu).expect("t");
    let again = unet
        .forward(&latent, &per_sample, &context)
        .expect("forward");
    assert_eq!(sd_common::max_abs_diff(&again, &out.sample), 0.0);
}

#[test]
fn bad_inputs_and_configs_are_typed_errors() {
    let g = case_tensors(CASE);
    let unet = unet();
    let (latent, context) = inputs(&g);
    let short = context.narrow(2, 0, 16).expect("narrow");
    assert!(matches!(
        unet.forward_at(&latent, 10.0, &short),
        Err(SdError::Input { .. })
    ));
    let three = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).expect("t");
    assert!(matches!(
        unet.forward(&latent, &three, &context),
        Err(SdError::Input { .. })
    ));

    let tmp = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(sd_tiny().join("unet/config.json")).expect("config");
    let text = text.replace(
        "\"class_embed_type\": null",
        "\"class_embed_type\": \"timestep\"",
    );
    std::fs::write(tmp.path().join("config.json"), text).expect("write");
    match UNet2DConditionModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::UnsupportedConfig { field, .. }) => assert_eq!(field, "class_embed_type"),
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
}
