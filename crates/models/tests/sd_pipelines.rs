//! The multi-step SD cases of the `sd-tiny` fixture, composed from our pieces exactly as
//! each case JSON's `call` describes: DDIM txt2img with CFG 7.5, DDIM inversion and
//! regeneration, img2img (SDEdit) and legacy inpainting at strengths 1.0 and 0.75. Every
//! latent of each trajectory is compared, then the decoded image.

mod sd_common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use sd_common::{case_json, case_tensors, check, sd_tiny};
use semaug_models::sd::sampling::inpaint_start;
use semaug_models::sd::{
    ddim_denoise, ddim_invert, to_unit_range, AutoencoderKl, DdimSchedule, Guidance, KnownRegion,
    UNet2DConditionModel,
};

struct Sd {
    unet: UNet2DConditionModel,
    vae: AutoencoderKl,
    schedule: DdimSchedule,
}

fn sd() -> Sd {
    let root = sd_tiny();
    Sd {
        unet: UNet2DConditionModel::load(&root.join("unet"), &Device::Cpu).expect("unet"),
        vae: AutoencoderKl::load(&root.join("vae"), &Device::Cpu).expect("vae"),
        schedule: DdimSchedule::load(&root.join("scheduler")).expect("scheduler"),
    }
}

fn stack(latents: &[Tensor]) -> Tensor {
    Tensor::stack(latents, 0).expect("stack")
}

fn timesteps(g: &HashMap<String, Tensor>, name: &str) -> Vec<i64> {
    g[name].to_vec1().expect("timesteps")
}

/// Decodes the final latent and checks `image_raw` / `image01` (or the given names).
fn check_image(
    sd: &Sd,
    case: &str,
    latent: &Tensor,
    g: &HashMap<String, Tensor>,
    names: [&str; 2],
) {
    let raw = sd.vae.decode_scaled(latent).expect("decode");
    check(case, names[0], &raw, &g[names[0]]);
    check(
        case,
        names[1],
        &to_unit_range(&raw).expect("unit"),
        &g[names[1]],
    );
}

#[test]
fn txt2img_matches_the_diffusers_pipeline() {
    let case = "ddim_txt2img";
    let g = case_tensors(case);
    let sd = sd();
    let ts = timesteps(&g, "timesteps");
    assert_eq!(ts, sd.schedule.timesteps(10).expect("ts"));
    let guidance = Guidance {
        cond: &g["cond_embeds"],
        uncond: Some(&g["uncond_embeds"]),
        scale: 7.5,
    };
    let run = ddim_denoise(
        &sd.unet,
        &sd.schedule,
        &g["initial_latent"],
        &ts,
        10,
        &guidance,
        None,
    )
    .expect("sampling");
    check(
        case,
        "noise_preds",
        &stack(&run.noise_preds),
        &g["noise_preds"],
    );
    check(
        case,
        "pred_original_samples",
        &stack(&run.pred_original_samples),
        &g["pred_original_samples"],
    );
    check(case, "latents", &stack(&run.latents), &g["latents"]);
    check_image(
        &sd,
        case,
        run.last().expect("latent"),
        &g,
        ["image_raw", "image01"],
    );
}

#[test]
fn inversion_and_regeneration_match_diffusers() {
    let case = "ddim_inversion";
    let g = case_tensors(case);
    let sd = sd();
    let guidance = Guidance {
        cond: &g["cond_embeds"],
        uncond: None,
        scale: 1.0,
    };
    let up = timesteps(&g, "inverse_timesteps");
    assert_eq!(up, sd.schedule.inverse_timesteps(10).expect("ts"));
    let inversion = ddim_invert(
        &sd.unet,
        &sd.schedule,
        &g["latent_scaled"],
        &up,
        10,
        &guidance,
    )
    .expect("inversion");
    check(
        case,
        "inversion_latents",
        &stack(&inversion),
        &g["inversion_latents"],
    );
    let inverted = inversion.last().expect("inverted");
    check(case, "inverted_latent", inverted, &g["inverted_latent"]);
    // Regenerate from the golden inverted latent, so each half is checked on its own.
    let down = timesteps(&g, "timesteps");
    let regen = ddim_denoise(
        &sd.unet,
        &sd.schedule,
        &g["inverted_latent"],
        &down,
        10,
        &guidance,
        None,
    )
    .expect("regeneration");
    check(
        case,
        "regeneration_latents",
        &stack(&regen.latents),
        &g["regeneration_latents"],
    );
    let last = regen.last().expect("latent");
    check(
        case,
        "reconstruction_latent",
        last,
        &g["reconstruction_latent"],
    );
    check_image(
        &sd,
        case,
        last,
        &g,
        ["reconstruction_image_raw", "reconstruction_image01"],
    );
}

#[test]
fn img2img_matches_the_diffusers_pipeline() {
    let case = "img2img";
    let g = case_tensors(case);
    let sd = sd();
    let strength = case_json(case)["params"]["strength"]
        .as_f64()
        .expect("strength");
    let ts = sd.schedule.img2img_timesteps(10, strength).expect("ts");
    assert_eq!(ts, timesteps(&g, "timesteps"));
    let noised = sd
        .schedule
        .add_noise(&g["latent_scaled"], &g["noise"], ts[0])
        .expect("noised");
    check(case, "noised_latent", &noised, &g["noised_latent"]);
    let guidance = Guidance {
        cond: &g["cond_embeds"],
        uncond: Some(&g["uncond_embeds"]),
        scale: 7.5,
    };
    let run =
        ddim_denoise(&sd.unet, &sd.schedule, &noised, &ts, 10, &guidance, None).expect("sampling");
    check(case, "latents", &stack(&run.latents), &g["latents"]);
    check_image(
        &sd,
        case,
        run.last().expect("latent"),
        &g,
        ["image_raw", "image01"],
    );
}

fn inpaint_case(case: &str) {
    let g = case_tensors(case);
    let sd = sd();
    let strength = case_json(case)["params"]["strength"]
        .as_f64()
        .expect("strength");
    let ts = sd.schedule.img2img_timesteps(10, strength).expect("ts");
    assert_eq!(ts, timesteps(&g, "timesteps"));
    // mask_latent = nearest downsampling of mask_64 = mask_64[::2, ::2].
    let strided = g["mask_64"]
        .reshape((1, 1, 32, 2, 32, 2))
        .and_then(|m| m.narrow(3, 0, 1))
        .and_then(|m| m.narrow(5, 0, 1))
        .and_then(|m| m.reshape((1, 1, 32, 32)))
        .expect("downsample");
    assert_eq!(sd_common::max_abs_diff(&strided, &g["mask_latent"]), 0.0);
    let start = inpaint_start(
        &sd.schedule,
        &g["latent_scaled"],
        &g["noise"],
        ts[0],
        strength,
    )
    .expect("start");
    let guidance = Guidance {
        cond: &g["cond_embeds"],
        uncond: Some(&g["uncond_embeds"]),
        scale: 7.5,
    };
    let known = KnownRegion {
        mask: &g["mask_latent"],
        clean: &g["latent_scaled"],
        noise: &g["noise"],
    };
    let run = ddim_denoise(
        &sd.unet,
        &sd.schedule,
        &start,
        &ts,
        10,
        &guidance,
        Some(&known),
    )
    .expect("sampling");
    check(
        case,
        "latents_before_blend",
        &stack(&run.latents_before_blend),
        &g["latents_before_blend"],
    );
    check(case, "latents", &stack(&run.latents), &g["latents"]);
    check_image(
        &sd,
        case,
        run.last().expect("latent"),
        &g,
        ["image_raw", "image01"],
    );
}

#[test]
fn inpainting_at_strength_1_matches_the_diffusers_pipeline() {
    inpaint_case("inpaint_strength100");
}

#[test]
fn inpainting_at_strength_075_matches_the_diffusers_pipeline() {
    inpaint_case("inpaint_strength075");
}
