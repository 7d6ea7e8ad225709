//! Textual inversion for Stable Diffusion on the `sd-tiny` fixture: the loss reaches the
//! new token's row through the frozen text encoder, UNet and VAE adapter (finite
//! differences agree with the gradient), a few steps of learning lower the loss on the
//! images it learns from, and a learned file loads back as a prompt token.

mod sd_common;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use sd_common::sd_tiny;
use semaug_core::seeds::Stream;
use semaug_core::time::{noised_per_sample, velocity_target};
use semaug_core::{Condition, Generator};
use semaug_models::concepts::{learn, load, save, ConceptBackend, ConceptConfig, ConceptInit};
use semaug_models::flow_training::TrainImages;
use semaug_models::pretrained::{SdConceptLearner, SdGenerator};

const TOKEN: &str = "<blob>";

fn generator() -> SdGenerator {
    SdGenerator::load(&sd_tiny(), &Device::Cpu).expect("sd-tiny loads")
}

/// Two 64x64 images of one made-up class: a bright disc on a dark ground.
fn images() -> TrainImages {
    let (h, w) = (64, 64);
    let mut pixels = Vec::new();
    for shift in [0usize, 6] {
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let (dy, dx) = (y as f32 - 32.0, x as f32 - 28.0 - shift as f32);
                    let inside = dy * dy + dx * dx < 300.0;
                    pixels.push(if inside { 220 - 40 * c as u8 } else { 20 });
                }
            }
        }
    }
    TrainImages {
        pixels,
        labels: vec![Some(0), Some(0)],
        height: h,
        width: w,
    }
}

/// The flow-matching loss of `row` on fixed latents, sigmas and noise.
fn loss(learner: &SdConceptLearner, row: &Tensor, x0: &Tensor, eps: &Tensor) -> Tensor {
    let sigmas = Tensor::new(&[0.3f32, 0.7], &Device::Cpu).expect("sigmas");
    let x = noised_per_sample(x0, eps, &sigmas).expect("noised");
    let v = learner
        .concept_velocity(row, &x, &sigmas)
        .expect("velocity");
    (v - velocity_target(x0, eps).expect("target"))
        .expect("diff")
        .sqr()
        .expect("sqr")
        .sum_all()
        .expect("sum")
}

#[test]
fn the_concept_row_receives_the_true_gradient_through_the_whole_pipeline() {
    let learner = SdConceptLearner::new(&generator(), TOKEN).expect("learner");
    let init = learner
        .concept_init(&ConceptInit::Word("photo".into()))
        .expect("init");
    let row = Var::from_tensor(&init).expect("var");
    let pixels = Stream::new(1, 0, 0, 0)
        .normal_tensor((2, 3, 64, 64), &Device::Cpu)
        .expect("pixels")
        .clamp(-1f32, 1f32)
        .expect("clamp");
    let x0 = learner.concept_encode(&pixels).expect("encode");
    let eps = Stream::new(2, 0, 0, 0)
        .normal_tensor(x0.dims(), &Device::Cpu)
        .expect("eps");
    let grads = loss(&learner, row.as_tensor(), &x0, &eps)
        .backward()
        .expect("backward");
    let grad = grads.get(row.as_tensor()).expect("the row has a gradient");
    let norm = grad
        .sqr()
        .expect("sq")
        .sum_all()
        .expect("sum")
        .sqrt()
        .expect("sqrt");
    let direction = grad.broadcast_div(&norm).expect("unit");
    let h = 1e-2;
    let at = |t: f64| {
        let moved = (&init + (&direction * t).expect("step")).expect("moved");
        loss(&learner, &moved, &x0, &eps)
            .to_scalar::<f32>()
            .expect("scalar") as f64
    };
    let numeric = (at(h) - at(-h)) / (2.0 * h);
    let analytic = norm.to_scalar::<f32>().expect("scalar") as f64;
    assert!(analytic > 0.0, "no gradient reached the concept row");
    let relative = (numeric - analytic).abs() / analytic;
    assert!(
        relative < 0.02,
        "directional derivative {numeric} vs gradient norm {analytic}"
    );
}

#[test]
fn learning_lowers_the_loss_and_the_file_loads_back_as_a_token() {
    let mut base = generator();
    let learner = SdConceptLearner::new(&base, TOKEN).expect("learner");
    let config = ConceptConfig {
        steps: 6,
        learning_rate: 5e-2,
        batch_size: 2,
        init: ConceptInit::Null,
        seed: 3,
    };
    let row = learn(&learner, &images(), &config, &mut |_, _| {}).expect("learn");
    // On a fixed batch of the learned images, the learned row beats its start.
    let train = images();
    let pixels: Vec<f32> = train
        .pixels
        .iter()
        .map(|&v| v as f32 / 127.5 - 1.0)
        .collect();
    let pixels = Tensor::from_vec(pixels, (2, 3, 64, 64), &Device::Cpu).expect("pixels");
    let x0 = learner.concept_encode(&pixels).expect("encode");
    let eps = Stream::new(9, 0, 0, 0)
        .normal_tensor(x0.dims(), &Device::Cpu)
        .expect("eps");
    let start = learner.concept_init(&ConceptInit::Null).expect("init");
    let before = loss(&learner, &start, &x0, &eps)
        .to_scalar::<f32>()
        .expect("scalar");
    let after = loss(&learner, &row, &x0, &eps)
        .to_scalar::<f32>()
        .expect("scalar");
    assert!(after < before, "loss {before} -> {after}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("learned_embeds.safetensors");
    let sha = base.info().weights_sha256.expect("sha");
    save(
        &path,
        &BTreeMap::from([(TOKEN.to_string(), row.clone())]),
        &sha,
    )
    .expect("save");
    let (concepts, model_sha) = load(&path).expect("load");
    assert_eq!(model_sha.as_deref(), Some(sha.as_str()));
    base.add_concept(TOKEN, concepts[TOKEN].clone())
        .expect("add concept");
    // The concept prompt embeds the learned row: it differs from the plain class prompt
    // and from an unrelated concept row.
    let with_token = base
        .embed(&[Condition::Concept(TOKEN.into())])
        .expect("embed");
    let plain = base
        .embed(&[Condition::Prompt("a photo of a".into())])
        .expect("embed");
    let gap = (with_token - plain)
        .expect("diff")
        .abs()
        .expect("abs")
        .max_all()
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar");
    assert!(gap > 1e-4, "the concept token changed nothing ({gap})");
    assert_eq!(row.dtype(), DType::F32);
}
