//! The multi-step SD3 cases of the `sd3-tiny` fixture, run through the project's own
//! engine: the [`Sd3Generator`] as a [`ConditionedField`] (prompts embedded by the
//! generator, `[uncond; cond]` guidance), Euler on the generator's scheduler grid, and
//! [`integrate`]. Sampling (CFG 7), inversion on the reversed grid and regeneration, and
//! img2img on the grid truncated at the pipeline's start sigma reproduce diffusers'
//! `StableDiffusion3Pipeline` / `StableDiffusion3Img2ImgPipeline` latent by latent.

mod sd3_common;

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use sd3_common::{case_json, case_tensors, check, sd3_tiny};
use semaug_core::time::noised;
use semaug_core::{
    integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver, Strength, VelocityField,
};
use semaug_models::pretrained::Sd3Generator;
use semaug_models::sd::to_unit_range;
use semaug_models::sd3::FlowMatchSchedule;

const PROMPT: &str = "a photo of an astronaut";

fn generator() -> Sd3Generator {
    Sd3Generator::load(&sd3_tiny(), &Device::Cpu).expect("sd3-tiny loads")
}

/// A field that remembers every velocity it hands out (the engine still drives it).
struct Recording<F> {
    field: F,
    velocities: RefCell<Vec<Tensor>>,
}

impl<F: VelocityField> VelocityField for Recording<F> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
        let v = self.field.velocity(x, sigma)?;
        self.velocities.borrow_mut().push(v.clone());
        Ok(v)
    }
}

/// Euler over `grid` from `start` through [`integrate`]: every latent (`[0]` = start)
/// and every velocity, stacked.
fn euler<F: VelocityField>(field: F, start: &Tensor, grid: &SigmaGrid) -> (Tensor, Tensor) {
    let recording = Recording {
        field,
        velocities: RefCell::new(Vec::new()),
    };
    let mut latents = vec![start.clone()];
    let mut hook = |_: usize, _: f64, x: &Tensor| {
        latents.push(x.clone());
        Ok(x.clone())
    };
    let run = integrate(&recording, start, grid, &Solver::Euler, Some(&mut hook)).expect("run");
    assert_eq!(run.nfe, grid.steps());
    let velocities = recording.velocities.into_inner();
    (
        Tensor::stack(&latents, 0).expect("stack"),
        Tensor::stack(&velocities, 0).expect("stack"),
    )
}

/// The grid's sigmas are exactly the case's stored f32 sigmas (an input, no tolerance).
fn assert_grid(grid: &SigmaGrid, golden: &Tensor) {
    let golden: Vec<f32> = golden.to_vec1().expect("sigmas");
    let ours: Vec<f32> = grid.sigmas().iter().map(|&s| s as f32).collect();
    assert_eq!(ours, golden);
}

fn last(latents: &Tensor) -> Tensor {
    latents
        .get(latents.dim(0).expect("steps") - 1)
        .expect("last")
}

fn check_image(
    sd3: &Sd3Generator,
    case: &str,
    latent: &Tensor,
    g: &HashMap<String, Tensor>,
    names: [&str; 2],
) {
    let raw = sd3.decode(latent).expect("decode");
    check(case, names[0], &raw, &g[names[0]]);
    check(
        case,
        names[1],
        &to_unit_range(&raw).expect("unit"),
        &g[names[1]],
    );
}

#[test]
fn the_scheduler_grid_is_diffusers_double_shift() {
    let case = "flow_scheduler";
    let g = case_tensors(case);
    let schedule = FlowMatchSchedule::load(&sd3_tiny().join("scheduler")).expect("scheduler");
    assert_eq!(schedule.shift(), 3.0);
    let train = Tensor::new(schedule.train_sigmas(), &Device::Cpu).expect("t");
    check(case, "train_sigmas", &train, &g["train_sigmas"]);
    let sigmas = Tensor::new(schedule.sigmas(8).expect("sigmas"), &Device::Cpu).expect("t");
    check(case, "sigmas", &sigmas, &g["sigmas"]);
    let timesteps = Tensor::new(schedule.timesteps(8).expect("ts"), &Device::Cpu).expect("t");
    check(case, "timesteps", &timesteps, &g["timesteps"]);
    // The engine's grid carries exactly those f32 sigmas; it is not the single shift.
    let grid = schedule.grid(8).expect("grid");
    assert_grid(&grid, &g["sigmas"]);
    let single = SigmaGrid::shifted(8, 3.0).expect("shifted");
    assert!((single.sigmas()[7] - grid.sigmas()[7]).abs() > 1e-3);
}

#[test]
fn guided_sampling_matches_the_diffusers_pipeline() {
    let case = "flow_sample";
    let g = case_tensors(case);
    let sd3 = generator();
    let grid = sd3.flow_grid(8).expect("grid");
    assert_grid(&grid, &g["sigmas"]);
    let guidance = case_json(case)["params"]["guidance_scale"]
        .as_f64()
        .expect("g");
    let field =
        ConditionedField::new(&sd3, &[Condition::Prompt(PROMPT.into())], guidance).expect("field");
    let (latents, velocities) = euler(field, &g["initial_noise"], &grid);
    check(case, "velocities", &velocities, &g["velocities"]);
    check(case, "latents", &latents, &g["latents"]);
    check_image(&sd3, case, &last(&latents), &g, ["image_raw", "image01"]);
}

#[test]
fn inversion_on_the_reversed_grid_and_regeneration_match_diffusers() {
    let case = "flow_inversion";
    let g = case_tensors(case);
    let sd3 = generator();
    let grid = sd3.flow_grid(8).expect("grid");
    let up = grid.reversed();
    assert_grid(&up, &g["inverse_sigmas"]);
    assert_grid(&grid, &g["sigmas"]);
    let field =
        || ConditionedField::new(&sd3, &[Condition::Prompt(PROMPT.into())], 1.0).expect("field");
    let (inversion, velocities) = euler(field(), &g["latent"], &up);
    check(
        case,
        "inversion_velocities",
        &velocities,
        &g["inversion_velocities"],
    );
    check(
        case,
        "inversion_latents",
        &inversion,
        &g["inversion_latents"],
    );
    check(
        case,
        "inverted_latent",
        &last(&inversion),
        &g["inverted_latent"],
    );
    // Regenerate from the golden inverted latent, so each half is checked on its own.
    let (regeneration, _) = euler(field(), &g["inverted_latent"], &grid);
    check(
        case,
        "regeneration_latents",
        &regeneration,
        &g["regeneration_latents"],
    );
    let reconstruction = last(&regeneration);
    check(
        case,
        "reconstruction_latent",
        &reconstruction,
        &g["reconstruction_latent"],
    );
    check_image(
        &sd3,
        case,
        &reconstruction,
        &g,
        ["reconstruction_image_raw", "reconstruction_image01"],
    );
}

#[test]
fn img2img_on_the_truncated_grid_matches_the_diffusers_pipeline() {
    let case = "flow_img2img";
    let g = case_tensors(case);
    let params = &case_json(case)["params"];
    let sd3 = generator();
    // diffusers' strength is a fraction of steps; the engine's is the sigma it enters at.
    let fraction = params["strength"].as_f64().expect("strength");
    let start = sd3
        .schedule()
        .img2img_start_sigma(8, fraction)
        .expect("start");
    assert_eq!(
        start as f32,
        params["start_sigma"].as_f64().expect("sigma") as f32
    );
    let strength = Strength::new(start).expect("strength");
    let grid = sd3
        .flow_grid(8)
        .expect("grid")
        .truncated(strength)
        .expect("truncated");
    assert_eq!(grid.steps(), 5);
    assert_grid(&grid, &g["sigmas"]);
    let x = noised(&g["latent"], &g["noise"], strength.sigma()).expect("noised");
    check(case, "noised_latent", &x, &g["noised_latent"]);
    let guidance = params["guidance_scale"].as_f64().expect("g");
    let field =
        ConditionedField::new(&sd3, &[Condition::Prompt(PROMPT.into())], guidance).expect("field");
    let (latents, _) = euler(field, &x, &grid);
    check(case, "latents", &latents, &g["latents"]);
    check_image(&sd3, case, &last(&latents), &g, ["image_raw", "image01"]);
}
