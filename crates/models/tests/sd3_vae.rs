//! SD3's 16-channel VAE (no quant convs, `shift_factor`) against diffusers on the
//! `sd3-tiny` fixture (`vae` case): posterior mean, the shifted and scaled latent, and the
//! decode of that latent.

mod sd3_common;

use candle_core::Device;
use sd3_common::{case_tensors, check, sd3_tiny};
use semaug_models::sd::{to_unit_range, AutoencoderKl};

const CASE: &str = "vae";

fn vae() -> AutoencoderKl {
    AutoencoderKl::load(&sd3_tiny().join("vae"), &Device::Cpu).expect("vae loads")
}

#[test]
fn encode_shifts_and_scales_like_diffusers() {
    let g = case_tensors(CASE);
    let vae = vae();
    let config = vae.config();
    assert_eq!(config.latent_channels, 16);
    assert!(!config.use_quant_conv && !config.use_post_quant_conv);
    assert_eq!(config.shift_factor, Some(0.0609));
    let posterior = vae.encode(&g["image"]).expect("encode");
    check(CASE, "latent_mean", &posterior.mean, &g["latent_mean"]);
    let latent = vae.scale_latent(&posterior.mean).expect("scale");
    check(CASE, "latent", &latent, &g["latent"]);
    check(
        CASE,
        "latent",
        &vae.encode_scaled(&g["image"]).expect("encode"),
        &g["latent"],
    );
}

#[test]
fn decode_unshifts_and_unscales_like_diffusers() {
    let g = case_tensors(CASE);
    let raw = vae().decode_scaled(&g["latent"]).expect("decode");
    check(CASE, "decode_raw", &raw, &g["decode_raw"]);
    let image01 = to_unit_range(&raw).expect("unit");
    check(CASE, "decode_image01", &image01, &g["decode_image01"]);
}
