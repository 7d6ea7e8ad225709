//! The VP adapter on closed-form models: Euler over the DDIM sigma grid equals the DDIM
//! scheduler step by step (epsilon, v and sample prediction), a point-mass data set is
//! generated exactly from sigma 1 (through the extrapolated top of the range), and the
//! flow/VP state conversions agree with `add_noise`.

use candle_core::{Device, Tensor};
use semaug_core::field::from_fn;
use semaug_core::seeds::{label, Stream};
use semaug_core::time::noised;
use semaug_core::{integrate, SigmaGrid, Solver};
use semaug_models::pretrained::vp::{
    flow_to_vp, sigma_from_alpha_cumprod, vp_coefficients, vp_to_flow,
};
use semaug_models::pretrained::VpSchedule;
use semaug_models::sd::{DdimConfig, DdimSchedule, PredictionType};

const MU: f64 = 0.3;
const STD: f64 = 0.5;

fn normal(shape: &[usize], variant: &str) -> Tensor {
    Stream::new(7, 0, label(variant), 0)
        .normal_tensor(shape, &Device::Cpu)
        .expect("tensor")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("difference") as f64
}

/// The exact prediction of a network trained on `x0 ~ N(MU, STD^2)` per element, at the
/// VP level `(a, b)`: `E[x0 | x_t]`, `E[eps | x_t]` and `v = a eps - b x0`.
fn gaussian_prediction(
    x_t: &Tensor,
    a: f64,
    b: f64,
    prediction: PredictionType,
) -> candle_core::Result<Tensor> {
    let var = a * a * STD * STD + b * b;
    let centred = x_t.affine(1.0, -a * MU)?;
    let eps = centred.affine(b / var, 0.0)?;
    let x0 = centred.affine(a * STD * STD / var, MU)?;
    match prediction {
        PredictionType::Epsilon => Ok(eps),
        PredictionType::Sample => Ok(x0),
        PredictionType::VPrediction => eps.affine(a, 0.0)? - x0.affine(b, 0.0)?,
    }
}

fn sd_ddim(prediction: PredictionType) -> DdimSchedule {
    let mut config = DdimConfig::sd15();
    config.prediction_type = prediction;
    DdimSchedule::new(config).expect("schedule")
}

fn ddim_matches_euler(prediction: PredictionType) {
    let ddim = sd_ddim(prediction);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let grid = vp.ddim_grid(&ddim, 10).expect("grid");
    let timesteps = ddim.timesteps(10).expect("timesteps");
    assert_eq!(grid.steps(), timesteps.len());
    // The model sees the integer timesteps of the grid, so its (a, b) are the table's.
    let model = |x_t: &Tensor, t: f64| {
        assert_eq!(t.fract(), 0.0, "non-integer timestep {t} on the DDIM grid");
        let abar = ddim.alpha_cumprod(t as i64).expect("abar") as f64;
        gaussian_prediction(x_t, abar.sqrt(), (1.0 - abar).sqrt(), prediction)
    };
    let start = normal(&[2, 3, 4, 4], "start");
    let mut ddim_latents = vec![start.clone()];
    let mut x_t = start.clone();
    for &t in &timesteps {
        let out = model(&x_t, t as f64).expect("model");
        x_t = ddim.step(&out, t, &x_t, 10).expect("step").prev_sample;
        ddim_latents.push(x_t.clone());
    }
    let field = from_fn(|x: &Tensor, sigma: f64| vp.velocity(x, sigma, model));
    let x = vp_to_flow(&start, grid.first()).expect("to flow");
    let mut flow_latents = vec![start];
    let mut hook = |_: usize, sigma: f64, x: &Tensor| {
        flow_latents.push(flow_to_vp(x, sigma)?);
        Ok(x.clone())
    };
    integrate(&field, &x, &grid, &Solver::Euler, Some(&mut hook)).expect("integrate");
    for (i, (ours, theirs)) in flow_latents.iter().zip(&ddim_latents).enumerate() {
        let diff = max_abs_diff(ours, theirs);
        assert!(diff < 2e-5, "{prediction:?} latent {i}: max diff {diff}");
    }
}

#[test]
fn euler_on_the_ddim_grid_is_ddim_for_epsilon_models() {
    ddim_matches_euler(PredictionType::Epsilon);
}

#[test]
fn euler_on_the_ddim_grid_is_ddim_for_v_prediction_models() {
    ddim_matches_euler(PredictionType::VPrediction);
}

#[test]
fn euler_on_the_ddim_grid_is_ddim_for_sample_prediction_models() {
    ddim_matches_euler(PredictionType::Sample);
}

/// A network trained on the single image `c` predicts `eps = (x_t - a c) / b` exactly; its
/// flow is straight (`v = (x - c) / sigma`), so Euler from pure noise lands on `c` on any
/// grid, including the steps outside the model's trained sigma range.
#[test]
fn a_point_mass_is_generated_exactly_from_sigma_one() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let c = normal(&[1, 3, 4, 4], "point").affine(0.5, 0.1).expect("c");
    let model = |x_t: &Tensor, t: f64| {
        let (a, b) = vp_coefficients(vp.sigma_at(t));
        (x_t - c.affine(a, 0.0)?)?.affine(1.0 / b, 0.0)
    };
    let (low, high) = vp.sigma_range();
    let noise = normal(&[1, 3, 4, 4], "noise");
    for sigma in [1.0, (1.0 + high) / 2.0, high, 0.5, low] {
        let x = noised(&c, &noise, sigma).expect("x");
        let v = vp.velocity(&x, sigma, model).expect("v");
        let exact = (&noise - &c).expect("eps - c");
        assert!(max_abs_diff(&v, &exact) < 1e-4, "sigma {sigma}");
    }
    let field = from_fn(|x: &Tensor, sigma: f64| vp.velocity(x, sigma, model));
    let grid = SigmaGrid::uniform(7).expect("grid");
    let out = integrate(&field, &noise, &grid, &Solver::Euler, None).expect("integrate");
    let diff = max_abs_diff(&out.x, &c);
    assert!(diff < 1e-4, "generated point differs by {diff}");
}

#[test]
fn the_field_is_finite_and_continuous_across_the_range_ends() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let model = |x_t: &Tensor, t: f64| {
        let (a, b) = vp_coefficients(vp.sigma_at(t));
        gaussian_prediction(x_t, a, b, PredictionType::Epsilon)
    };
    let x = normal(&[1, 2, 3, 3], "x");
    for sigma in [0.0, 1.0] {
        let v = vp.velocity(&x, sigma, model).expect("v");
        let finite = v
            .flatten_all()
            .and_then(|v| v.to_vec1::<f32>())
            .expect("values");
        assert!(finite.iter().all(|f| f.is_finite()), "sigma {sigma}");
    }
    let (low, high) = vp.sigma_range();
    for end in [low, high] {
        let at = vp.velocity(&x, end, model).expect("v");
        for side in [end * (1.0 - 1e-9), end * (1.0 + 1e-9)] {
            let near = vp.velocity(&x, side, model).expect("v");
            assert!(max_abs_diff(&at, &near) < 1e-4, "jump at sigma {end}");
        }
    }
    assert!(vp.velocity(&x, 1.5, model).is_err());
}

#[test]
fn flow_and_vp_states_convert_like_add_noise() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let x0 = normal(&[1, 4, 4, 4], "x0");
    let eps = normal(&[1, 4, 4, 4], "eps");
    for t in [1i64, 501, 999] {
        let sigma = vp.sigma_at(t as f64);
        let abar = ddim.alpha_cumprod(t).expect("abar") as f64;
        assert_eq!(sigma, sigma_from_alpha_cumprod(abar));
        let vp_state = ddim.add_noise(&x0, &eps, t).expect("add_noise");
        let flow_state = noised(&x0, &eps, sigma).expect("noised");
        assert!(max_abs_diff(&flow_to_vp(&flow_state, sigma).expect("to vp"), &vp_state) < 1e-5);
        assert!(max_abs_diff(&vp_to_flow(&vp_state, sigma).expect("to flow"), &flow_state) < 1e-5);
    }
}

#[test]
fn the_ddim_grid_ends_where_ddim_does() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let grid = vp.ddim_grid(&ddim, 10).expect("grid");
    let expected: Vec<f64> = [901, 801, 701, 601, 501, 401, 301, 201, 101, 1, 0]
        .iter()
        .map(|&t| vp.sigma_at(t as f64))
        .collect();
    // set_alpha_to_one = false: the last step lands on alphas_cumprod[0], not on sigma 0.
    assert_eq!(grid.sigmas(), expected.as_slice());
    let mut config = DdimConfig::sd15();
    config.set_alpha_to_one = true;
    let ddim = DdimSchedule::new(config).expect("schedule");
    let grid = vp.ddim_grid(&ddim, 10).expect("grid");
    assert_eq!(grid.last(), 0.0);
}

/// For a well-behaved model (the exact denoiser of Gaussian data) the field is invertible
/// over the whole range, both extrapolated ends included: pull an image back to sigma 1
/// and generate it again with Heun; the round-trip error is small at 50 steps and falls
/// at second order.
#[test]
fn a_gaussian_model_round_trips_over_the_full_range() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let model = |x_t: &Tensor, t: f64| {
        let (a, b) = vp_coefficients(vp.sigma_at(t));
        gaussian_prediction(x_t, a, b, PredictionType::Epsilon)
    };
    let field = from_fn(|x: &Tensor, sigma: f64| vp.velocity(x, sigma, model));
    let image = normal(&[1, 3, 8, 8], "image")
        .affine(STD, MU)
        .expect("image");
    let round_trip = |grid: SigmaGrid| {
        let noise =
            integrate(&field, &image, &grid.reversed(), &Solver::Heun, None).expect("invert");
        assert!(
            max_abs_diff(&noise.x, &image) > 0.1,
            "inversion went nowhere"
        );
        let back = integrate(&field, &noise.x, &grid, &Solver::Heun, None).expect("generate");
        max_abs_diff(&back.x, &image)
    };
    let uniform = [50, 100].map(|n| round_trip(SigmaGrid::uniform(n).expect("grid")));
    let timestep = [50, 100].map(|n| round_trip(vp.timestep_grid(n).expect("grid")));
    println!(
        "round-trip max error at 50/100 Heun steps: uniform {uniform:?}, timestep {timestep:?}"
    );
    for errors in [uniform, timestep] {
        assert!(errors[0] < 5e-3, "{errors:?}");
        assert!(errors[1] < errors[0] / 3.0, "not second order: {errors:?}");
    }
}

#[test]
fn the_timestep_grid_runs_from_noise_to_data_uniformly_in_timestep() {
    let ddim = sd_ddim(PredictionType::Epsilon);
    let vp = VpSchedule::from_ddim(&ddim).expect("vp");
    let grid = vp.timestep_grid(4).expect("grid");
    let inner: Vec<f64> = [749.25, 499.5, 249.75]
        .iter()
        .map(|&t| vp.sigma_at(t))
        .collect();
    assert_eq!(
        grid.sigmas(),
        [vec![1.0], inner, vec![0.0]].concat().as_slice()
    );
    assert_eq!(vp.timestep_grid(1).expect("grid").sigmas(), [1.0, 0.0]);
    assert!(vp.timestep_grid(0).is_err());
}
