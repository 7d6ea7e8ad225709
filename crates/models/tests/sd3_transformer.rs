//! The SD3 MMDiT against diffusers on the `sd3-tiny` fixture (`transformer` case): the
//! velocity of `[latent; latent]` with `[uncond; cond]` text at timesteps 1000, 693.79 and
//! 8.93, and the patch embedding, `temb` and `context_embedder` intermediates.

mod sd3_common;

use candle_core::{DType, Device, Tensor};
use sd3_common::{case_tensors, check, sd3_tiny};
use semaug_models::sd::SdError;
use semaug_models::sd3::Sd3Transformer2DModel;

const CASE: &str = "transformer";

fn transformer() -> Sd3Transformer2DModel {
    Sd3Transformer2DModel::load(&sd3_tiny().join("transformer"), &Device::Cpu)
        .expect("transformer loads")
}

fn cat(a: &Tensor, b: &Tensor) -> Tensor {
    Tensor::cat(&[a, b], 0).expect("cat")
}

#[test]
fn velocities_and_intermediates_match_diffusers() {
    let g = case_tensors(CASE);
    let model = transformer();
    let x = cat(&g["latent"], &g["latent"]);
    let context = cat(&g["uncond_embeds"], &g["cond_embeds"]);
    let pooled = cat(&g["uncond_pooled"], &g["cond_pooled"]);
    let timesteps: Vec<f32> = g["timesteps"].to_vec1().expect("timesteps");
    for (i, &t) in timesteps.iter().enumerate() {
        let t = Tensor::new(&[t, t], &Device::Cpu).expect("t");
        let out = model
            .forward_with_intermediates(&x, &t, &context, &pooled)
            .expect("forward");
        let name = format!("velocity_{i}");
        check(CASE, &name, &out.sample, &g[&name]);
        if i == 0 {
            check(
                CASE,
                "debug_pos_embed_0",
                &out.patch_embed,
                &g["debug_pos_embed_0"],
            );
            check(
                CASE,
                "debug_time_text_embed_0",
                &out.temb,
                &g["debug_time_text_embed_0"],
            );
            check(
                CASE,
                "debug_context_embedder_0",
                &out.context,
                &g["debug_context_embedder_0"],
            );
        }
    }
}

#[test]
fn bad_inputs_and_configs_are_typed_errors() {
    let model = transformer();
    let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("zeros");
    let (ctx, pooled) = (z(&[1, 5, 96]), z(&[1, 80]));
    // Odd size, too large for the 24x24 position table, wrong channels.
    for shape in [[1, 16, 31, 32], [1, 16, 50, 50], [1, 4, 32, 32]] {
        assert!(matches!(
            model.forward_at(&z(&shape), 500.0, &ctx, &pooled),
            Err(SdError::Input {
                input: "sample",
                ..
            })
        ));
    }
    // A smaller latent uses a smaller centre crop.
    let small = model.forward_at(&z(&[1, 16, 8, 12]), 500.0, &ctx, &pooled);
    assert_eq!(small.expect("small latent").dims(), [1, 16, 8, 12]);
    assert!(matches!(
        model.forward_at(&z(&[1, 16, 8, 8]), 500.0, &z(&[1, 5, 32]), &pooled),
        Err(SdError::Input {
            input: "context",
            ..
        })
    ));

    let tmp = tempfile::tempdir().expect("tempdir");
    let config = std::fs::read_to_string(sd3_tiny().join("transformer/config.json"))
        .expect("config")
        .replace("\"qk_norm\": null", "\"qk_norm\": \"rms_norm\"");
    std::fs::write(tmp.path().join("config.json"), config).expect("write");
    match Sd3Transformer2DModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::UnsupportedConfig { field, .. }) => assert_eq!(field, "qk_norm"),
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
}
