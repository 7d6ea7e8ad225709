//! The flow-matching trainer: it learns, and a resumed run equals an uninterrupted one.

use std::path::Path;

use semaug_models::flow_training::{export_ema, train, Budget, FlowTrainConfig, TrainImages};
use semaug_models::unet::{SampleSize, UNet2DConfig, UNet2DModel};

/// Eight 16x16 images in two classes: class 0 dark with a bright square, class 1 bright.
fn toy_data() -> TrainImages {
    let (h, w) = (16, 16);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..8usize {
        let class = i % 2;
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let square = (4..12).contains(&x) && (4..12).contains(&y);
                    let v = match class {
                        0 if square => 200 + (c * 20) as u8,
                        0 => 20,
                        _ => 230 - (i * 3) as u8,
                    };
                    pixels.push(v);
                }
            }
        }
        labels.push(if i == 7 { None } else { Some(class) });
    }
    TrainImages {
        pixels,
        labels,
        height: h,
        width: w,
    }
}

fn config() -> FlowTrainConfig {
    let mut model = UNet2DConfig::test();
    model.num_class_embeds = Some(3);
    model.sample_size = Some(SampleSize::Square(16));
    let mut config = FlowTrainConfig::new(model);
    config.batch_size = 4;
    config.total_steps = 40;
    config.warmup_steps = 5;
    config.learning_rate = 1e-3;
    config.checkpoint_every = 3;
    config
}

fn run(out: &Path, config: &FlowTrainConfig, max_steps: Option<u64>) -> Vec<f64> {
    let mut losses = Vec::new();
    let budget = Budget {
        deadline: None,
        max_steps,
    };
    train(config, &toy_data(), out, budget, &mut |_, loss, _| {
        losses.push(loss)
    })
    .unwrap();
    losses
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let mut config = config();
    config.total_steps = 7;
    let straight = tempfile::tempdir().unwrap();
    let straight_losses = run(straight.path(), &config, None);
    let resumed = tempfile::tempdir().unwrap();
    // Stop after 4 steps (checkpoints at 3 and at the stop), then again after 1 more.
    let mut losses = run(resumed.path(), &config, Some(4));
    losses.extend(run(resumed.path(), &config, Some(1)));
    losses.extend(run(resumed.path(), &config, None));
    assert_eq!(losses, straight_losses);
    let (a, step_a) = export_ema(straight.path(), &straight.path().join("unet"), false).unwrap();
    let (b, step_b) = export_ema(resumed.path(), &resumed.path().join("unet"), false).unwrap();
    assert_eq!((step_a, step_b), (7, 7));
    for (name, t) in a.weights() {
        let diff = (t - &b.weights()[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
    // A different configuration refuses to resume into the same folder.
    let mut other = config.clone();
    other.learning_rate = 5e-4;
    let err = train(
        &other,
        &toy_data(),
        resumed.path(),
        Budget::default(),
        &mut |_, _, _| {},
    );
    assert!(err.unwrap_err().to_string().contains("different settings"));
}

#[test]
fn loss_falls_and_the_export_loads_in_diffusers_layout() {
    let out = tempfile::tempdir().unwrap();
    let losses = run(out.path(), &config(), None);
    let head: f64 = losses[..8].iter().sum::<f64>() / 8.0;
    let tail: f64 = losses[losses.len() - 8..].iter().sum::<f64>() / 8.0;
    assert!(tail < 0.7 * head, "loss {head:.3} -> {tail:.3}");
    let dir = out.path().join("unet");
    export_ema(out.path(), &dir, true).unwrap();
    let model = UNet2DModel::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.config().num_class_embeds, Some(3));
}
