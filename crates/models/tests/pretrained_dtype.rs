//! Half-precision weights (f16, bf16) for the Stable Diffusion and SD3 backends on the
//! `sd-tiny` and `sd3-tiny` fixtures, run on the CPU: the generator seam still speaks f32
//! (latents, velocities, decoded images), embeddings are in the weights' dtype, and a short
//! generation (splice at strength 0.6, Euler, classifier-free guidance 2) and the velocity
//! of its first step agree with the f32 model within a tolerance derived from the format's
//! unit roundoff. The DDPM `UNet2DModel` backend's velocity likewise (`unet2d-tiny`).
//!
//! Tolerance: a network evaluated in a format with unit roundoff `u` (f16: 2^-11 = 4.9e-4,
//! bf16: 2^-8 = 3.9e-3) makes a relative error of about `u` at each rounding (weights once,
//! activations at every layer); for a chain of `k` roundings with random signs the errors
//! add like `u * sqrt(k)`. The tiny fixtures have around 10 to 40 roundings between input
//! and output per network (text encoder, denoiser, VAE each), and the trajectory chains
//! encode, four denoiser steps and decode, so `k` is at most a few hundred and the relative
//! error should stay below `u * sqrt(400) = 20 u`: 1e-2 for f16, 8e-2 for bf16. A bug (an
//! f32-only op fed half values, a lost upcast of softmax or norms, a mismatched scale) is
//! an O(1) error, far above either bound. The error must also be above zero, so the half
//! model really ran in half precision.

mod common;
mod sd3_common;
mod sd_common;

use candle_core::{DType, Device, Tensor};
use semaug_core::time::noised;
use semaug_core::{integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver, Strength};
use semaug_models::pretrained::{Sd3Generator, SdGenerator, Unet2dGenerator};

const PROMPT: &str = "a photo of an astronaut";
const STRENGTH: f64 = 0.6;
const GUIDANCE: f64 = 2.0;
/// Euler steps of the splice.
const STEPS: usize = 4;

/// Unit roundoff of a half format (half the distance from 1 to the next value).
fn unit_roundoff(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2f64.powi(-11),
        DType::BF16 => 2f64.powi(-8),
        other => panic!("not a half format: {other:?}"),
    }
}

/// The bound of the module docs: `u * sqrt(400)`.
fn tolerance(dtype: DType) -> f64 {
    unit_roundoff(dtype) * 400f64.sqrt()
}

/// `||a - b|| / ||b||` over all elements, in f64.
fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let flat = |t: &Tensor| -> Vec<f64> {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("values")
    };
    let (a, b) = (flat(a), flat(b));
    let diff: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

/// What one splice run gives: the first velocity, the decoded image, the embedding's dtype.
struct Splice {
    velocity: Tensor,
    image: Tensor,
    embedding_dtype: DType,
}

/// Splice `image` at [`STRENGTH`] with `noise`, four Euler steps on the model's grid.
fn splice(g: &dyn Generator, image: &Tensor, noise: &Tensor) -> Splice {
    let x0 = g.encode(image).expect("encode");
    assert_eq!(x0.dtype(), DType::F32, "latents cross the seam as f32");
    let start = noised(&x0, noise, STRENGTH).expect("noised");
    let field =
        ConditionedField::new(g, &[Condition::Prompt(PROMPT.into())], GUIDANCE).expect("field");
    let embedding_dtype = g
        .embed(&[Condition::Prompt(PROMPT.into())])
        .expect("embed")
        .dtype();
    let grid = four_step_grid(g);
    let velocity =
        semaug_core::VelocityField::velocity(&field, &start, grid.first()).expect("velocity");
    assert_eq!(
        velocity.dtype(),
        DType::F32,
        "velocities cross the seam as f32"
    );
    let end = integrate(&field, &start, &grid, &Solver::Euler, None).expect("integrate");
    let image = g.decode(&end.x).expect("decode");
    assert_eq!(image.dtype(), DType::F32, "images cross the seam as f32");
    Splice {
        velocity,
        image,
        embedding_dtype,
    }
}

/// The model's coarsest grid that has [`STEPS`] steps below [`STRENGTH`] (the grids differ
/// per model: SD's is uniform in the DDIM timestep, SD3's shifted).
fn four_step_grid(g: &dyn Generator) -> SigmaGrid {
    let strength = Strength::new(STRENGTH).expect("strength");
    (STEPS..10 * STEPS)
        .map(|n| {
            g.sigma_grid(n)
                .and_then(|grid| grid.truncated(strength))
                .expect("grid")
        })
        .find(|grid| grid.steps() == STEPS)
        .expect("a grid with four steps below the strength")
}

/// Fixed noise shaped like the latent of `image` (seeded, as the project draws it).
fn noise_like(g: &dyn Generator, image: &Tensor) -> Tensor {
    let shape = g.encode(image).expect("encode").dims().to_vec();
    semaug_core::seeds::Stream::new(7, 0, 0, 0)
        .normal_tensor(shape, &Device::Cpu)
        .expect("noise")
}

/// Compares each half format with the f32 run of the same splice.
fn check_half_precision(name: &str, load: impl Fn(DType) -> Box<dyn Generator>, image: &Tensor) {
    let reference_model = load(DType::F32);
    let noise = noise_like(reference_model.as_ref(), image);
    let reference = splice(reference_model.as_ref(), image, &noise);
    assert_eq!(reference.embedding_dtype, DType::F32);
    for dtype in [DType::F16, DType::BF16] {
        let half = splice(load(dtype).as_ref(), image, &noise);
        assert_eq!(
            half.embedding_dtype, dtype,
            "embeddings stay in the weights' dtype"
        );
        let velocity = relative_error(&half.velocity, &reference.velocity);
        let image_error = relative_error(&half.image, &reference.image);
        let bound = tolerance(dtype);
        println!(
            "{name} {dtype:?}: velocity {velocity:.2e}, image {image_error:.2e} (bound {bound:.1e})"
        );
        for (what, error) in [("velocity", velocity), ("image", image_error)] {
            assert!(
                error < bound,
                "{name} {dtype:?} {what}: relative error {error:.3e} >= {bound:.1e}"
            );
            assert!(error > 0.0, "{name} {dtype:?} {what}: identical to f32");
        }
    }
}

#[test]
fn sd_half_precision_splice_agrees_with_f32() {
    let image = sd_common::case_tensors("vae")["image"].clone();
    let load = |dtype| -> Box<dyn Generator> {
        let g = SdGenerator::load_as(&sd_common::sd_tiny(), &Device::Cpu, dtype).expect("load");
        assert_eq!(g.unet().dtype(), dtype);
        assert_eq!(g.vae().dtype(), dtype);
        assert_eq!(g.text_encoder().dtype(), dtype);
        Box::new(g)
    };
    check_half_precision("sd-tiny", load, &image);
}

#[test]
fn sd3_half_precision_splice_agrees_with_f32() {
    let image = sd3_common::case_tensors("vae")["image"].clone();
    let load = |dtype| -> Box<dyn Generator> {
        let g = Sd3Generator::load_as(&sd3_common::sd3_tiny(), &Device::Cpu, dtype).expect("load");
        assert_eq!(g.transformer().dtype(), dtype);
        assert_eq!(g.vae().dtype(), dtype);
        Box::new(g)
    };
    check_half_precision("sd3-tiny", load, &image);
}

#[test]
fn unet2d_half_precision_velocity_agrees_with_f32() {
    let scheduler = tempfile::tempdir().expect("tempdir");
    let linear_ddpm = r#"{"_class_name": "DDPMScheduler", "beta_start": 0.0001,
        "beta_end": 0.02, "beta_schedule": "linear", "num_train_timesteps": 1000}"#;
    std::fs::write(scheduler.path().join("scheduler_config.json"), linear_ddpm).expect("write");
    let load = |dtype| {
        let dir = common::fixture_model_dir();
        let g =
            Unet2dGenerator::load_as(&dir, scheduler.path(), &Device::Cpu, dtype).expect("load");
        assert_eq!(g.unet().dtype(), dtype);
        g
    };
    let reference_model = load(DType::F32);
    let (h, w) = reference_model.info().image_size;
    let x = semaug_core::seeds::Stream::new(7, 0, 0, 0)
        .normal_tensor((2, 3, h, w), &Device::Cpu)
        .expect("state");
    let velocity = |g: &Unet2dGenerator| {
        let field =
            ConditionedField::new(g, &[Condition::Null, Condition::Null], 1.0).expect("field");
        let v = semaug_core::VelocityField::velocity(&field, &x, STRENGTH).expect("velocity");
        assert_eq!(v.dtype(), DType::F32, "velocities cross the seam as f32");
        v
    };
    let reference = velocity(&reference_model);
    for dtype in [DType::F16, DType::BF16] {
        let error = relative_error(&velocity(&load(dtype)), &reference);
        let bound = tolerance(dtype);
        println!("unet2d-tiny {dtype:?}: velocity {error:.2e} (bound {bound:.1e})");
        assert!(error < bound && error > 0.0, "{dtype:?}: {error:.3e}");
    }
}
