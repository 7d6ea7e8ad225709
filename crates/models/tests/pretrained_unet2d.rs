//! The DDPM/DDIM `UNet2DModel` backend on the `unet2d-tiny` fixture (random weights) with
//! a DDPM scheduler config written here (linear betas 1e-4..0.02 over 1000 steps): the
//! folder resolves as a DDPM denoiser, the velocity is finite over the whole sigma range,
//! inverting an image and generating it back with Heun reproduces it, and the conditions
//! map to the class rows.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::fixture_model_dir;
use semaug_core::{integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver, Strength};
use semaug_models::pretrained::resolve::classify_dir;
use semaug_models::pretrained::{ModelSource, Unet2dGenerator};
use semaug_models::unet::{UNet2DConfig, UNet2DModel, WeightsDtype};

const DDPM_CONFIG: &str = r#"{
  "_class_name": "DDPMScheduler",
  "beta_start": 0.0001,
  "beta_end": 0.02,
  "beta_schedule": "linear",
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "variance_type": "fixed_small",
  "clip_sample": true
}"#;

/// `root/unet` (a copy of the fixture) and `root/scheduler/scheduler_config.json`.
fn pipeline_folder(root: &Path) -> PathBuf {
    let unet = root.join("unet");
    std::fs::create_dir_all(&unet).expect("unet dir");
    for entry in std::fs::read_dir(fixture_model_dir()).expect("fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, unet.join(path.file_name().expect("name"))).expect("copy");
    }
    let scheduler = root.join("scheduler");
    std::fs::create_dir_all(&scheduler).expect("scheduler dir");
    std::fs::write(scheduler.join("scheduler_config.json"), DDPM_CONFIG).expect("config");
    unet
}

fn load(root: &Path) -> Unet2dGenerator {
    let unet_dir = pipeline_folder(root);
    let ModelSource::Unet2d {
        unet_dir,
        scheduler_dir,
    } = classify_dir(&unet_dir).expect("classify")
    else {
        panic!("not resolved as a DDPM UNet");
    };
    Unet2dGenerator::load(&unet_dir, &scheduler_dir, &Device::Cpu).expect("load")
}

/// A smooth `n x n` image in [-0.8, 0.8]: low-frequency waves, different per channel.
fn smooth_image(n: usize) -> Tensor {
    let mut values = Vec::with_capacity(3 * n * n);
    for c in 0..3 {
        for i in 0..n {
            for j in 0..n {
                let (y, x) = (i as f32 / n as f32, j as f32 / n as f32);
                let phase = c as f32 * 1.3;
                values.push(0.8 * ((3.0 * x + phase).sin() * (2.0 * y - phase).cos()));
            }
        }
    }
    Tensor::from_vec(values, (1, 3, n, n), &Device::Cpu).expect("image")
}

/// PSNR in dB of images in [-1, 1] (peak-to-peak 2).
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a - b)
        .and_then(|d| d.sqr())
        .and_then(|d| d.mean_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("mse") as f64;
    10.0 * (4.0 / mse).log10()
}

/// Inverts to strength 0.8 (the pull-back `perturb` takes) and generates back, 40 Heun
/// steps each way on the 50-step uniform grid. Beyond about sigma 0.9 a random-weight eps
/// model is ill-conditioned: its clean estimate `(x_t - b eps) / a` amplifies the network
/// by `1 / a` (about 150 at t = 999 here; measured velocity gain about 210 at sigma 1), so
/// the generation direction magnifies round-trip errors; a trained model's `eps ~ x_t / b`
/// cancels that gain (see `pretrained_vp.rs` for a full-range round trip).
#[test]
fn invert_then_generate_reproduces_a_smooth_image() {
    let root = tempfile::tempdir().expect("tempdir");
    let unet = load(root.path());
    let field = ConditionedField::new(&unet, &[Condition::Class(3)], 1.0).expect("field");
    // 16 x 16 keeps the 160 network evaluations quick; the UNet takes any multiple of 4.
    let image = smooth_image(16);
    let strength = Strength::new(0.8).expect("strength");
    let grid = SigmaGrid::uniform(50)
        .expect("grid")
        .truncated(strength)
        .expect("truncated");
    let noised = integrate(&field, &image, &grid.reversed(), &Solver::Heun, None).expect("invert");
    let back = integrate(&field, &noised.x, &grid, &Solver::Heun, None).expect("generate");
    let db = psnr(&back.x, &image);
    println!(
        "invert to 0.8 + generate, {} Heun steps each way: PSNR {db:.1} dB",
        grid.steps()
    );
    assert!(db > 30.0, "round trip PSNR {db:.1} dB");
    // The inverted state is not the image: the round trip went somewhere and came back.
    assert!(psnr(&noised.x, &image) < 20.0);
}

#[test]
fn the_velocity_is_finite_over_the_whole_sigma_range() {
    let root = tempfile::tempdir().expect("tempdir");
    let unet = load(root.path());
    let (low, high) = unet.schedule().sigma_range();
    let embedding = unet
        .embed(&[Condition::Class(0), Condition::Null])
        .expect("embed");
    let x = Tensor::cat(&[smooth_image(32), smooth_image(32)], 0).expect("batch");
    for sigma in [0.0, low / 2.0, low, 0.5, high, (1.0 + high) / 2.0, 1.0] {
        let v = unet.velocity(&x, sigma, &embedding).expect("velocity");
        assert_eq!(v.dims(), x.dims());
        let values = v
            .flatten_all()
            .and_then(|v| v.to_vec1::<f32>())
            .expect("values");
        assert!(values.iter().all(|f| f.is_finite()), "sigma {sigma}");
    }
}

#[test]
fn conditions_are_class_rows_and_info_names_the_model() {
    let root = tempfile::tempdir().expect("tempdir");
    let unet = load(root.path());
    let table = unet
        .unet()
        .class_embedding_table()
        .expect("class table")
        .clone();
    let e = unet
        .embed(&[Condition::Class(3), Condition::Null])
        .expect("embed");
    let rows =
        Tensor::stack(&[table.get(3).expect("3"), table.get(10).expect("null")], 0).expect("rows");
    assert_eq!(common::max_abs_diff(&e, &rows), 0.0);
    assert!(
        unet.embed(&[Condition::Class(10)]).is_err(),
        "the null row is no class"
    );
    assert!(unet.embed(&[Condition::Prompt("a cat".into())]).is_err());
    let info = unet.info();
    assert_eq!(info.image_size, (32, 32));
    assert_eq!(info.weights_sha256.as_deref().map(str::len), Some(64));
    let image = smooth_image(32);
    assert_eq!(
        common::max_abs_diff(&unet.encode(&image).expect("encode"), &image),
        0.0
    );
}

#[test]
fn an_unconditional_model_gives_every_class_the_zero_row() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = UNet2DConfig::test();
    config.num_class_embeds = None;
    let varmap = VarMap::new();
    let mut model = UNet2DModel::trainable(&config, &varmap, 3, &Device::Cpu).expect("model");
    let dir = root.path().join("ddpm");
    model.save(&dir, WeightsDtype::F32).expect("save");
    std::fs::write(dir.join("scheduler_config.json"), DDPM_CONFIG).expect("scheduler");
    let ModelSource::Unet2d {
        unet_dir,
        scheduler_dir,
    } = classify_dir(&dir).expect("classify")
    else {
        panic!("not resolved as a DDPM UNet");
    };
    assert_eq!(scheduler_dir, dir);
    let unet = Unet2dGenerator::load(&unet_dir, &scheduler_dir, &Device::Cpu).expect("load");
    let e = unet
        .embed(&[Condition::Null, Condition::Class(4)])
        .expect("embed");
    let zeros = Tensor::zeros(e.dims(), DType::F32, &Device::Cpu).expect("zeros");
    assert_eq!(common::max_abs_diff(&e, &zeros), 0.0);
    assert!(unet.embed(&[Condition::Concept("<x>".into())]).is_err());
}
