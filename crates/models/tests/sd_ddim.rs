//! The DDIM schedule against diffusers on the `sd-tiny` fixture (`ddim_scheduler` case):
//! tables, timesteps, single forward and inverse steps, `add_noise`; plus analytic checks.

mod sd_common;

use candle_core::{Device, Tensor};
use sd_common::{case_tensors, check, sd_tiny};
use semaug_models::sd::{DdimConfig, DdimSchedule, PredictionType, SdError};

const CASE: &str = "ddim_scheduler";

fn schedule() -> DdimSchedule {
    DdimSchedule::load(&sd_tiny().join("scheduler")).expect("scheduler loads")
}

fn vec_tensor(v: &[f32]) -> Tensor {
    Tensor::from_slice(v, v.len(), &Device::Cpu).expect("tensor")
}

#[test]
fn tables_are_bit_identical_to_pytorch() {
    let g = case_tensors(CASE);
    let s = schedule();
    assert_eq!(s.config(), &DdimConfig::sd15());
    let golden_betas: Vec<f32> = g["betas"].to_vec1().expect("betas");
    let golden_acp: Vec<f32> = g["alphas_cumprod"].to_vec1().expect("acp");
    check(CASE, "betas", &vec_tensor(s.betas()), &g["betas"]);
    check(
        CASE,
        "alphas_cumprod",
        &vec_tensor(s.alphas_cumprod()),
        &g["alphas_cumprod"],
    );
    assert_eq!(s.betas(), &golden_betas[..], "betas differ in some bit");
    assert_eq!(
        s.alphas_cumprod(),
        &golden_acp[..],
        "alphas_cumprod differ in some bit"
    );
}

#[test]
fn timesteps_match_diffusers() {
    let g = case_tensors(CASE);
    let s = schedule();
    let golden: Vec<i64> = g["timesteps_10"].to_vec1().expect("ts");
    let inverse: Vec<i64> = g["inverse_timesteps_10"].to_vec1().expect("its");
    assert_eq!(s.timesteps(10).expect("ts"), golden);
    assert_eq!(s.inverse_timesteps(10).expect("its"), inverse);
    assert!(matches!(s.timesteps(0), Err(SdError::Input { .. })));
    assert!(matches!(s.timesteps(1001), Err(SdError::Input { .. })));
}

#[test]
fn forward_steps_match_diffusers() {
    let g = case_tensors(CASE);
    let s = schedule();
    let (eps, x) = (&g["model_output"], &g["sample"]);
    let step = s.step(eps, 501, x, 10).expect("step");
    check(
        CASE,
        "step_t501_prev_sample",
        &step.prev_sample,
        &g["step_t501_prev_sample"],
    );
    check(
        CASE,
        "step_t501_pred_original_sample",
        &step.pred_original_sample,
        &g["step_t501_pred_original_sample"],
    );
    let last = s.step(eps, 1, x, 10).expect("step");
    check(
        CASE,
        "step_t1_prev_sample",
        &last.prev_sample,
        &g["step_t1_prev_sample"],
    );
}

#[test]
fn inverse_steps_match_diffusers() {
    let g = case_tensors(CASE);
    let s = schedule();
    let (eps, x) = (&g["model_output"], &g["sample"]);
    let up = s.inverse_step(eps, 501, x, 10).expect("inverse step");
    check(
        CASE,
        "inverse_step_t501_prev_sample",
        &up.prev_sample,
        &g["inverse_step_t501_prev_sample"],
    );
    let first = s.inverse_step(eps, 1, x, 10).expect("inverse step");
    check(
        CASE,
        "inverse_step_t1_prev_sample",
        &first.prev_sample,
        &g["inverse_step_t1_prev_sample"],
    );
}

#[test]
fn add_noise_matches_diffusers() {
    let g = case_tensors(CASE);
    let noised = schedule()
        .add_noise(&g["latent_scaled"], &g["model_output"], 501)
        .expect("add_noise");
    check(CASE, "add_noise_t501", &noised, &g["add_noise_t501"]);
}

#[test]
fn img2img_truncation_follows_get_timesteps() {
    let s = schedule();
    assert_eq!(
        s.img2img_timesteps(10, 0.6).expect("ts"),
        vec![501, 401, 301, 201, 101, 1]
    );
    assert_eq!(s.img2img_timesteps(10, 0.75).expect("ts").len(), 7);
    assert_eq!(s.img2img_timesteps(10, 1.0).expect("ts")[0], 901);
    assert!(s.img2img_timesteps(10, 0.0).expect("ts").is_empty());
    assert!(s.img2img_timesteps(10, 1.5).is_err());
}

/// With the exact noise as model output, a step lands exactly on the noised clean sample:
/// for every prediction type, DDIM moves `sqrt(a) x0 + sqrt(1-a) eps` to the next level.
#[test]
fn exact_predictions_are_transported_exactly_for_every_prediction_type() {
    let x0 = sd_common::case_tensors(CASE)["latent_scaled"].clone();
    let eps = sd_common::case_tensors(CASE)["model_output"].clone();
    for prediction in [
        PredictionType::Epsilon,
        PredictionType::Sample,
        PredictionType::VPrediction,
    ] {
        let mut config = DdimConfig::sd15();
        config.prediction_type = prediction;
        let s = DdimSchedule::new(config).expect("schedule");
        // The exact model output at timestep t (v depends on the noise level).
        let output_at = |t: i64| {
            let a = s.alpha_cumprod(t).expect("alpha") as f64;
            match prediction {
                PredictionType::Epsilon => eps.clone(),
                PredictionType::Sample => x0.clone(),
                PredictionType::VPrediction => ((&eps * a.sqrt()).expect("v")
                    - (&x0 * (1.0 - a).sqrt()).expect("v"))
                .expect("v"),
            }
        };
        let xt = s.add_noise(&x0, &eps, 501).expect("x_t");
        let output = output_at(501);
        let step = s.step(&output, 501, &xt, 10).expect("step");
        let expected = s.add_noise(&x0, &eps, 401).expect("x_prev");
        let diff = sd_common::max_abs_diff(&step.prev_sample, &expected);
        assert!(diff < 1e-5, "{prediction:?}: {diff}");
        let x0_diff = sd_common::max_abs_diff(&step.pred_original_sample, &x0);
        assert!(x0_diff < 1e-5, "{prediction:?}: x0 off by {x0_diff}");
        // The inverse step undoes it.
        let back = s.inverse_step(&output_at(401), 501, &step.prev_sample, 10);
        let back_diff = sd_common::max_abs_diff(&back.expect("inverse").prev_sample, &xt);
        assert!(
            back_diff < 1e-4,
            "{prediction:?}: inverse off by {back_diff}"
        );
    }
}

#[test]
fn unsupported_configs_are_typed_errors() {
    let mut config = DdimConfig::sd15();
    config.thresholding = true;
    assert!(matches!(
        DdimSchedule::new(config),
        Err(SdError::UnsupportedConfig {
            field: "thresholding",
            ..
        })
    ));
}
