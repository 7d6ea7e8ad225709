//! The Stable Diffusion backend on the `sd-tiny` fixture, end to end through the
//! `Generator` seam and the core crate's one integration loop: prompt, class and concept
//! embeddings equal the golden text-encoder outputs, encode equals the golden VAE latent,
//! and Euler on the DDIM-equivalent sigma grids reproduces diffusers' DDIM txt2img,
//! img2img (SDEdit) and regeneration trajectories latent by latent. DDIM inversion is not
//! an Euler step of the field (diffusers evaluates the UNet one timestep ahead of the
//! sample); the test pins that explanation down.

mod sd_common;

use candle_core::{Device, Tensor};
use sd_common::{case_json, case_tensors, check, max_abs_diff, sd_tiny};
use semaug_core::time::noised;
use semaug_core::{integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver, Strength};
use semaug_models::pretrained::vp::{flow_to_vp, vp_coefficients, vp_to_flow};
use semaug_models::pretrained::SdGenerator;

const PROMPT: &str = "a photo of an astronaut";

fn generator() -> SdGenerator {
    SdGenerator::load(&sd_tiny(), &Device::Cpu).expect("sd-tiny loads")
}

/// Integrates `field` from the VP latent `start` over `grid` with Euler; every latent of
/// the trajectory in VP form (`[0]` = start).
fn euler_vp_trajectory<F: semaug_core::VelocityField>(
    field: &F,
    start: &Tensor,
    grid: &SigmaGrid,
) -> Tensor {
    let x = vp_to_flow(start, grid.first()).expect("to flow");
    let mut latents = vec![start.clone()];
    let mut hook = |_: usize, sigma: f64, x: &Tensor| {
        latents.push(flow_to_vp(x, sigma)?);
        Ok(x.clone())
    };
    integrate(field, &x, grid, &Solver::Euler, Some(&mut hook)).expect("integrate");
    Tensor::stack(&latents, 0).expect("stack")
}

#[test]
fn embeddings_are_the_golden_text_encoder_outputs() {
    let g = case_tensors("ddim_txt2img");
    let mut sd = generator().with_class_names(vec!["dog".into(), "astronaut".into()]);
    sd.prompt_template = "a photo of an {class}".into();
    let conditions = [
        Condition::Prompt(PROMPT.into()),
        Condition::Null,
        Condition::Class(1),
    ];
    let e = sd.embed(&conditions).expect("embed");
    assert_eq!(e.dims(), [3, 77, 32]);
    let atol = sd_common::atol("text_encoder", "last_hidden_state");
    for (row, golden) in [(0, "cond_embeds"), (1, "uncond_embeds"), (2, "cond_embeds")] {
        let diff = max_abs_diff(&e.narrow(0, row, 1).expect("row"), &g[golden]);
        println!("embed row {row} vs {golden}: {diff:.2e} (atol {atol:.0e})");
        assert!(diff <= atol, "row {row}: {diff}");
    }
    let unknown = sd.embed(&[Condition::Class(2)]).expect_err("no class 2");
    assert!(unknown.to_string().contains("class 2"), "{unknown}");
    assert!(sd.embed(&[Condition::Concept("<cat>".into())]).is_err());
}

#[test]
fn concept_tokens_splice_their_rows_like_textual_inversion() {
    let case = "text_encoder_concept";
    let g = case_tensors(case);
    let params = &case_json(case)["params"];
    let token = params["concept_token"].as_str().expect("token");
    let mut sd = generator();
    let id = sd
        .add_concept(token, g["concept_embedding"].clone())
        .expect("add");
    assert_eq!(id as u64, params["concept_token_id"].as_u64().expect("id"));
    assert_eq!(
        sd.prompt(&Condition::Concept(token.into()))
            .expect("prompt"),
        params["prompts"][0]
    );
    let second = params["prompts"][1].as_str().expect("prompt").to_string();
    let e = sd
        .embed(&[Condition::Concept(token.into()), Condition::Prompt(second)])
        .expect("embed");
    check(case, "last_hidden_state", &e, &g["last_hidden_state"]);
    assert!(
        sd.add_concept(token, g["concept_embedding"].clone())
            .is_err(),
        "added twice"
    );
    let wrong = Tensor::zeros(5, candle_core::DType::F32, &Device::Cpu).expect("row");
    assert!(sd.add_concept("<other>", wrong).is_err());
}

#[test]
fn encode_is_the_scaled_posterior_mean_and_info_is_complete() {
    let g = case_tensors("vae");
    let sd = generator();
    let latent = sd.encode(&g["image"]).expect("encode");
    check("vae", "latent_scaled", &latent, &g["latent_scaled"]);
    let image = sd.decode(&g["latent_scaled"]).expect("decode");
    check(
        "vae",
        "decode_latent_scaled_raw",
        &image,
        &g["decode_latent_scaled_raw"],
    );
    let info = sd.info();
    assert_eq!(info.image_size, (64, 64));
    assert_eq!(info.weights_sha256.as_deref().map(str::len), Some(64));
}

#[test]
fn euler_with_guidance_reproduces_ddim_txt2img() {
    let case = "ddim_txt2img";
    let g = case_tensors(case);
    let sd = generator();
    let grid = sd.ddim_grid(10).expect("grid");
    let field =
        ConditionedField::new(&sd, &[Condition::Prompt(PROMPT.into())], 7.5).expect("field");
    let latents = euler_vp_trajectory(&field, &g["initial_latent"], &grid);
    check(case, "latents", &latents, &g["latents"]);
    let last = latents.get(10).expect("last");
    check(
        case,
        "image_raw",
        &sd.decode(&last).expect("decode"),
        &g["image_raw"],
    );
}

/// SDEdit at strength 0.6 of 10 DDIM steps enters at t = 501: the flow splice enters at
/// the sigma of t = 501 on the DDIM grid truncated there.
#[test]
fn a_flow_splice_reproduces_img2img() {
    let case = "img2img";
    let g = case_tensors(case);
    let sd = generator();
    let start_t = case_json(case)["params"]["start_timestep"]
        .as_f64()
        .expect("t");
    let strength = Strength::new(sd.schedule().sigma_at(start_t)).expect("strength");
    let grid = sd
        .ddim_grid(10)
        .expect("grid")
        .truncated(strength)
        .expect("truncated");
    assert_eq!(grid.steps(), 6);
    let x = noised(&g["latent_scaled"], &g["noise"], strength.sigma()).expect("noised");
    let start = flow_to_vp(&x, strength.sigma()).expect("vp");
    check(case, "noised_latent", &start, &g["noised_latent"]);
    let field =
        ConditionedField::new(&sd, &[Condition::Prompt(PROMPT.into())], 7.5).expect("field");
    let latents = euler_vp_trajectory(&field, &start, &grid);
    check(case, "latents", &latents, &g["latents"]);
    let last = latents.get(6).expect("last");
    check(
        case,
        "image_raw",
        &sd.decode(&last).expect("decode"),
        &g["image_raw"],
    );
}

#[test]
fn euler_regenerates_like_ddim_from_the_inverted_latent() {
    let case = "ddim_inversion";
    let g = case_tensors(case);
    let sd = generator();
    let grid = sd.ddim_grid(10).expect("grid");
    let field =
        ConditionedField::new(&sd, &[Condition::Prompt(PROMPT.into())], 1.0).expect("field");
    let latents = euler_vp_trajectory(&field, &g["inverted_latent"], &grid);
    check(
        case,
        "regeneration_latents",
        &latents,
        &g["regeneration_latents"],
    );
}

/// diffusers' `DDIMInverseScheduler` moves the sample from the level of `t - 100` to `t`
/// with `eps = unet(sample, t)`: the model sees the *next* timestep. Our Euler inversion
/// on the reversed grid asks it at the current one. Rebuilding the step with the model's
/// timestep taken one grid point ahead reproduces the golden inversion; the plain field
/// differs by far more than the atol.
#[test]
fn ddim_inversion_is_euler_with_the_timestep_one_grid_point_ahead() {
    let case = "ddim_inversion";
    let g = case_tensors(case);
    let sd = generator();
    let up = sd.ddim_grid(10).expect("grid").reversed();
    let cond = sd
        .embed(&[Condition::Prompt(PROMPT.into())])
        .expect("embed");
    let schedule = sd.schedule();
    let start = &g["latent_scaled"];
    let mut x = vp_to_flow(start, up.first()).expect("flow");
    let mut lagged = vec![start.clone()];
    for (sigma, next) in up.intervals() {
        let (a, b) = vp_coefficients(sigma);
        let x_t = flow_to_vp(&x, sigma).expect("vp");
        let eps = sd
            .unet()
            .forward_at(&x_t, schedule.timestep(next), &cond)
            .expect("unet");
        let (x0, eps) = schedule.split_prediction(&eps, &x_t, a, b).expect("split");
        x = (&x + ((eps - x0).expect("v") * (next - sigma)).expect("step")).expect("x");
        lagged.push(flow_to_vp(&x, next).expect("vp"));
    }
    check(
        case,
        "inversion_latents",
        &Tensor::stack(&lagged, 0).expect("stack"),
        &g["inversion_latents"],
    );

    let field =
        ConditionedField::new(&sd, &[Condition::Prompt(PROMPT.into())], 1.0).expect("field");
    let plain = euler_vp_trajectory(&field, start, &up);
    let diff = max_abs_diff(&plain, &g["inversion_latents"]);
    let tol = sd_common::atol(case, "inversion_latents");
    println!("plain Euler inversion vs DDIMInverseScheduler: max diff {diff:.3e} (atol {tol:.0e})");
    assert!(
        diff > 10.0 * tol,
        "the timestep lag should be visible, got {diff}"
    );
}
