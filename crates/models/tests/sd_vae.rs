//! The VAE against diffusers on the `sd-tiny` fixture (`vae` case): posterior mean and
//! log-variance, the scaled latent, and decoding of the scaled and a random latent.

mod sd_common;

use candle_core::{DType, Device};
use sd_common::{case_tensors, check, sd_tiny};
use semaug_models::sd::{to_unit_range, AutoencoderKl, SdError};

const CASE: &str = "vae";

fn vae() -> AutoencoderKl {
    AutoencoderKl::load(&sd_tiny().join("vae"), &Device::Cpu).expect("vae loads")
}

#[test]
fn encode_matches_diffusers() {
    let g = case_tensors(CASE);
    let vae = vae();
    assert_eq!(vae.config().downscale_factor(), 2);
    // The stored [-1, 1] image is exactly 2 * u8 / 255 - 1.
    let u8_255 = candle_core::Tensor::new(255f32, &Device::Cpu).expect("scalar");
    let from_u8 = g["image_u8"]
        .to_dtype(DType::F32)
        .and_then(|t| t.broadcast_div(&u8_255))
        .and_then(|t| (t * 2.0)? - 1.0)
        .expect("image");
    assert!(sd_common::max_abs_diff(&from_u8, &g["image"]) == 0.0);
    let posterior = vae.encode(&g["image"]).expect("encode");
    check(CASE, "latent_mean", &posterior.mean, &g["latent_mean"]);
    check(
        CASE,
        "latent_logvar",
        &posterior.logvar,
        &g["latent_logvar"],
    );
    let scaled = vae.scale_latent(&posterior.mean).expect("scale");
    check(CASE, "latent_scaled", &scaled, &g["latent_scaled"]);
}

#[test]
fn decode_matches_diffusers() {
    let g = case_tensors(CASE);
    let vae = vae();
    let raw = vae.decode_scaled(&g["latent_scaled"]).expect("decode");
    check(
        CASE,
        "decode_latent_scaled_raw",
        &raw,
        &g["decode_latent_scaled_raw"],
    );
    let image01 = to_unit_range(&raw).expect("unit");
    check(
        CASE,
        "decode_latent_scaled_image01",
        &image01,
        &g["decode_latent_scaled_image01"],
    );
    // The case decodes both latents as diffusion-model (scaled) latents.
    let random = vae.decode_scaled(&g["random_latent"]).expect("decode");
    check(CASE, "decode_random_raw", &random, &g["decode_random_raw"]);
    let random01 = to_unit_range(&random).expect("unit");
    check(
        CASE,
        "decode_random_image01",
        &random01,
        &g["decode_random_image01"],
    );
}

#[test]
fn bad_inputs_and_files_are_typed_errors() {
    let vae = vae();
    let odd = candle_core::Tensor::zeros((1, 3, 63, 64), DType::F32, &Device::Cpu).expect("t");
    assert!(matches!(vae.encode(&odd), Err(SdError::Input { .. })));
    let wrong = candle_core::Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).expect("t");
    assert!(matches!(vae.decode(&wrong), Err(SdError::Input { .. })));

    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        sd_tiny().join("vae/config.json"),
        tmp.path().join("config.json"),
    )
    .expect("copy");
    match AutoencoderKl::load(tmp.path(), &Device::Cpu) {
        Err(SdError::MissingFile { path, .. }) => {
            assert!(path.ends_with("diffusion_pytorch_model.safetensors"))
        }
        other => panic!("expected MissingFile, got {other:?}"),
    }
    // A weight of the wrong shape is reported by name.
    let mut tensors = candle_core::safetensors::load(
        sd_tiny().join("vae/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .expect("weights");
    let name = "decoder.conv_out.bias";
    tensors.insert(
        name.into(),
        candle_core::Tensor::zeros(4, DType::F32, &Device::Cpu).expect("t"),
    );
    candle_core::safetensors::save(
        &tensors,
        tmp.path().join("diffusion_pytorch_model.safetensors"),
    )
    .expect("save");
    match AutoencoderKl::load(tmp.path(), &Device::Cpu) {
        Err(SdError::WeightShape { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected WeightShape, got {other:?}"),
    }
}
