//! End-to-end training on synthetic separable data: accuracy, model selection,
//! determinism, exact resume, and that synthetic variants really replace real images.

mod common;

use candle_core::{Device, Tensor};
use semaug_data::augment::{CutMix, Mixup};
use semaug_eval::{
    evaluate, BatchMix, Classifier, Control, EvalError, Progress, ResNetConfig, SyntheticMix,
    TrainConfig, TrainSet, Trainer,
};

use common::{striped_image, striped_set};

fn narrow_resnet(seed: u64) -> Classifier {
    let config = ResNetConfig::resnet20(4).with_first_width(8);
    Classifier::new(&config, seed, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_same_weights(a: &Classifier, b: &Classifier) {
    let (a, b) = (a.state().unwrap(), b.state().unwrap());
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(flat(x), flat(y), "{name} differs");
    }
}

/// Batch 32, one warm-up epoch, peak learning rate 0.05 (0.1 overshoots on 8 steps an
/// epoch).
fn quick_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 0.05,
        warmup_epochs: 1,
        ..TrainConfig::default()
    }
}

/// A few hundred 16x16 images of 4 classes: > 95% validation accuracy in a few epochs,
/// and the model ends with the weights of its best validation epoch.
#[test]
fn learns_separable_classes_and_keeps_the_best_epoch() {
    let train = TrainSet::real_only(striped_set(60, 16, 1));
    let val = striped_set(25, 16, 2);
    let model = narrow_resnet(0);
    let config = quick_config(6);
    let mut steps = 0;
    let mut epochs_seen = Vec::new();
    let outcome = Trainer::new(&model, config)
        .unwrap()
        .run(&train, Some(&val), |p| {
            match p {
                Progress::Step { loss, .. } => {
                    assert!(loss.is_finite());
                    steps += 1;
                }
                Progress::Epoch { record, .. } => epochs_seen.push(record.epoch),
            }
            Control::Continue
        })
        .unwrap();
    assert_eq!(steps, 6 * 8);
    assert_eq!(epochs_seen, vec![1, 2, 3, 4, 5, 6]);
    assert!(!outcome.stopped);
    let best = outcome.best.unwrap();
    assert!(
        best.validation.accuracy > 0.95,
        "best validation accuracy {best:?}"
    );
    let best_in_history = outcome
        .history
        .iter()
        .filter_map(|r| r.validation.map(|v| v.accuracy))
        .fold(0.0, f64::max);
    assert_eq!(best.validation.accuracy, best_in_history);
    let first_best = outcome
        .history
        .iter()
        .find(|r| r.validation.map(|v| v.accuracy) == Some(best_in_history))
        .unwrap();
    assert_eq!(
        best.epoch, first_best.epoch,
        "ties go to the earliest epoch"
    );
    // The model now holds the selected epoch's weights.
    let now = evaluate(&model, &val, 64).unwrap();
    assert_eq!(now.accuracy(), best.validation.accuracy);
    assert_eq!(now.balanced_accuracy(), best.validation.balanced_accuracy);
    let first = &outcome.history[0];
    assert!(first.train_loss > outcome.history[5].train_loss);
    assert_eq!(first.synthetic_fraction, 0.0);
}

/// Every real image of class c gets variants drawn from class (c + 1) % 4. With the
/// synthetic probability at 1 the classifier only ever sees the variants under the real
/// labels, so it learns the shifted mapping and fails on real validation data; at 0 it
/// never sees them and succeeds.
#[test]
fn synthetic_variants_replace_real_images_under_the_real_label() {
    let real = striped_set(60, 16, 3);
    let variants: Vec<Vec<_>> = (0..real.len())
        .map(|i| {
            let shifted = (real.labels()[i] + 1) % 4;
            (0..2)
                .map(|v| {
                    let mut rng = semaug_core::seeds::Stream::new(9, i as u64, v, 0);
                    striped_image(shifted, 16, &mut rng)
                })
                .collect()
        })
        .collect();
    let train = TrainSet::with_synthetic(real, variants).unwrap();
    assert_eq!(train.synthetic_count(), 480);
    let val = striped_set(20, 16, 4);
    let accuracy = |probability| {
        let model = narrow_resnet(0);
        let config = TrainConfig {
            synthetic: SyntheticMix::PerSample { probability },
            ..quick_config(6)
        };
        let trainer = Trainer::new(&model, config).unwrap();
        let outcome = trainer.run(&train, None, |_| Control::Continue).unwrap();
        let fraction = outcome.history[0].synthetic_fraction;
        assert_eq!(fraction, probability as f64);
        evaluate(&model, &val, 64).unwrap().accuracy()
    };
    let all_synthetic = accuracy(1.0);
    let all_real = accuracy(0.0);
    assert!(
        all_synthetic < 0.2,
        "trained on shifted variants: {all_synthetic}"
    );
    assert!(all_real > 0.9, "trained on real images: {all_real}");
}

/// A config that exercises every random choice: synthetic replacement, CutMix, label
/// smoothing, clipping, augmentation.
fn busy_config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        warmup_epochs: 1,
        label_smoothing: 0.1,
        grad_clip: Some(5.0),
        batch_mix: BatchMix::Cutmix(CutMix::default()),
        synthetic: SyntheticMix::Fraction { fraction: 0.3 },
        seed: 11,
        ..TrainConfig::default()
    }
}

fn small_train_set() -> TrainSet {
    let real = striped_set(12, 12, 5);
    let variants = (0..real.len())
        .map(|i| {
            let mut rng = semaug_core::seeds::Stream::new(6, i as u64, 0, 0);
            (0..i % 3)
                .map(|_| striped_image(real.labels()[i], 12, &mut rng))
                .collect()
        })
        .collect();
    TrainSet::with_synthetic(real, variants).unwrap()
}

#[test]
fn same_seed_gives_identical_weights() {
    let train = small_train_set();
    let val = striped_set(4, 12, 7);
    let run = |config: TrainConfig| {
        let model = narrow_resnet(3);
        let outcome = Trainer::new(&model, config)
            .unwrap()
            .run(&train, Some(&val), |_| Control::Continue)
            .unwrap();
        (model, outcome)
    };
    let (a, outcome_a) = run(busy_config(2));
    let (b, outcome_b) = run(busy_config(2));
    assert_same_weights(&a, &b);
    assert_eq!(outcome_a, outcome_b);
    let mixup = TrainConfig {
        batch_mix: BatchMix::Mixup(Mixup::default()),
        ..busy_config(2)
    };
    let (c, _) = run(mixup);
    let (d, _) = run(TrainConfig {
        seed: 12,
        ..busy_config(2)
    });
    let differs = |x: &Classifier| {
        let (s, t) = (a.state().unwrap(), x.state().unwrap());
        s.iter().zip(&t).any(|((_, p), (_, q))| flat(p) != flat(q))
    };
    assert!(
        differs(&c) && differs(&d),
        "other settings must change the result"
    );
}

/// Stopped after epoch 1 and resumed (into a model initialised differently, which the
/// checkpoint overwrites), a run ends bit-identical to an uninterrupted one.
#[test]
fn resume_after_a_stop_equals_an_uninterrupted_run() {
    let train = small_train_set();
    let val = striped_set(4, 12, 8);
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");

    let whole = narrow_resnet(4);
    let expected = Trainer::new(&whole, busy_config(3))
        .unwrap()
        .run(&train, Some(&val), |_| Control::Continue)
        .unwrap();

    let first = narrow_resnet(4);
    let stopped = Trainer::new(&first, busy_config(3))
        .unwrap()
        .with_checkpoints(&ck)
        .run(&train, Some(&val), |p| match p {
            Progress::Epoch {
                record, checkpoint, ..
            } => {
                assert!(checkpoint.as_ref().is_some_and(|c| c.is_dir()));
                if record.epoch == 1 {
                    Control::Stop
                } else {
                    Control::Continue
                }
            }
            Progress::Step { .. } => Control::Continue,
        })
        .unwrap();
    assert!(stopped.stopped);
    assert_eq!(stopped.history.len(), 1);

    let resumed_model = narrow_resnet(99);
    let mut epochs_run = Vec::new();
    let resumed = Trainer::new(&resumed_model, busy_config(3))
        .unwrap()
        .with_checkpoints(&ck)
        .run(&train, Some(&val), |p| {
            if let Progress::Epoch { record, .. } = p {
                epochs_run.push(record.epoch);
            }
            Control::Continue
        })
        .unwrap();
    assert_eq!(
        epochs_run,
        vec![2, 3],
        "resumes after the checkpointed epoch"
    );
    assert_eq!(resumed, expected);
    assert_same_weights(&resumed_model, &whole);

    // A checkpoint from other settings is refused rather than silently mixed.
    let other = Trainer::new(
        &narrow_resnet(4),
        TrainConfig {
            lr: 0.05,
            ..busy_config(3)
        },
    )
    .unwrap()
    .with_checkpoints(&ck)
    .run(&train, Some(&val), |_| Control::Continue);
    assert!(
        matches!(other, Err(EvalError::CheckpointMismatch { .. })),
        "{other:?}"
    );
}

#[test]
fn bad_settings_and_data_are_reported() {
    let model = narrow_resnet(0);
    for config in [
        TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            batch_size: 1,
            ..TrainConfig::default()
        },
        TrainConfig {
            lr: -1.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            warmup_epochs: 50,
            ..TrainConfig::default()
        },
        TrainConfig {
            label_smoothing: 1.0,
            ..TrainConfig::default()
        },
        TrainConfig {
            synthetic: SyntheticMix::PerSample { probability: 1.5 },
            ..TrainConfig::default()
        },
        TrainConfig {
            batch_mix: BatchMix::Mixup(Mixup { alpha: 0.0 }),
            ..TrainConfig::default()
        },
    ] {
        assert!(Trainer::new(&model, config.clone()).is_err(), "{config:?}");
    }
    let five_classes = {
        let set = striped_set(2, 8, 0);
        semaug_eval::LabeledImages::new(set.images().to_vec(), set.labels().to_vec(), 5).unwrap()
    };
    let trainer = Trainer::new(&model, TrainConfig::default()).unwrap();
    let err = trainer
        .run(&TrainSet::real_only(five_classes), None, |_| {
            Control::Continue
        })
        .unwrap_err();
    assert!(matches!(err, EvalError::Data { .. }), "{err}");
    let mismatched = TrainSet::with_synthetic(striped_set(2, 8, 0), vec![vec![]; 3]);
    assert!(mismatched.is_err());
    let wrong_size = TrainSet::with_synthetic(
        striped_set(1, 8, 0),
        vec![vec![image::RgbImage::new(9, 8)], vec![], vec![], vec![]],
    );
    assert!(wrong_size.is_err());
}
