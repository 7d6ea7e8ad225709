//! The ResNets: parameter counts against independently computed ones, shapes, gradient
//! flow to every parameter, seeded init, weight-decay groups, option-A shortcut and
//! safetensors round trips.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use semaug_core::seeds::Stream;
use semaug_eval::loss::{one_hot, soft_cross_entropy};
use semaug_eval::{Arch, Classifier, EvalError, Mode, ResNetConfig};

fn images(n: usize, size: usize, seed: u64) -> Tensor {
    Stream::new(seed, 0, 0, 0)
        .normal_tensor((n, 3, size, size), &Device::Cpu)
        .unwrap()
        .clamp(-1f32, 1f32)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Counts worked out by hand from the layer shapes and checked against the same
/// layouts built in PyTorch: ResNet-20 is the 269,722 of He et al.'s CIFAR network
/// (option A), PreAct-ResNet-18 is kuangliu's 11,171,146 plus a final BN (1,024).
#[test]
fn parameter_counts_match_the_architectures() {
    let count = |arch: Arch| {
        Classifier::new(&arch.config(10), 0, &Device::Cpu)
            .unwrap()
            .num_parameters()
    };
    assert_eq!(count(Arch::Resnet20), 269_722);
    assert_eq!(count(Arch::PreactResnet18), 11_172_170);
    assert_eq!(count(Arch::SmallResnet), 1_228_970);
}

#[test]
fn logits_have_batch_by_class_shape_at_every_input_size() {
    let cases = [
        (ResNetConfig::resnet20(10).with_first_width(4), 32),
        (ResNetConfig::resnet20(10).with_first_width(4), 17),
        (ResNetConfig::preact_resnet18(7).with_first_width(4), 32),
        (ResNetConfig::small_resnet(5).with_first_width(4), 64),
        (ResNetConfig::small_resnet(5).with_first_width(4), 128),
    ];
    for (config, size) in cases {
        let model = Classifier::new(&config, 1, &Device::Cpu).unwrap();
        for mode in [Mode::Train, Mode::Eval] {
            let logits = model.forward(&images(2, size, 0), mode).unwrap();
            assert_eq!(
                logits.dims(),
                [2, config.num_classes],
                "{config:?} at {size}px"
            );
            assert!(flat(&logits).iter().all(|v| v.is_finite()));
        }
    }
}

/// Every trainable variable of every architecture receives a non-zero gradient (no
/// op on the path lacks a backward), and running statistics are not trainable.
#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let configs = [
        (ResNetConfig::resnet20(3).with_first_width(4), 16),
        (ResNetConfig::preact_resnet18(3).with_first_width(4), 16),
        (ResNetConfig::small_resnet(3).with_first_width(4), 32),
    ];
    for (config, size) in configs {
        let model = Classifier::new(&config, 2, &Device::Cpu).unwrap();
        let logits = model.forward(&images(4, size, 1), Mode::Train).unwrap();
        let targets = one_hot(&[0, 1, 2, 1], 3, &Device::Cpu).unwrap();
        let grads = soft_cross_entropy(&logits, &targets)
            .unwrap()
            .backward()
            .unwrap();
        let params = model.trainable();
        assert!(params.iter().all(|(n, _)| !n.contains("running")));
        let all = semaug_train::Params::from_varmap(model.varmap());
        assert_eq!(all.len() - params.len(), 2 * bn_count(&all), "{config:?}");
        for (name, var) in params.iter() {
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let norm = grad
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{config:?}: {name} gradient norm {norm}"
            );
        }
    }
}

fn bn_count(all: &semaug_train::Params) -> usize {
    all.iter()
        .filter(|(n, _)| n.ends_with(".running_mean"))
        .count()
}

#[test]
fn weight_decay_applies_to_conv_and_linear_weights_only() {
    let model = Classifier::new(&ResNetConfig::resnet20(10), 0, &Device::Cpu).unwrap();
    let (decay, plain) = model.decay_groups();
    // 19 convs + fc; BN scales and shifts (19 BNs) + fc bias.
    assert_eq!(decay.len(), 20);
    assert_eq!(plain.len(), 2 * 19 + 1);
    assert!(decay
        .iter()
        .all(|(n, v)| n.ends_with(".weight") && v.rank() >= 2));
    assert!(plain
        .iter()
        .all(|(n, _)| n.contains("bn") || n == "fc.bias"));
    assert_eq!(decay.element_count() + plain.element_count(), 269_722);
}

/// Same seed, same weights; another seed, other weights; conv weights ~ N(0, 2 / fan_out).
#[test]
fn init_is_a_function_of_the_seed_with_kaiming_spread() {
    let config = ResNetConfig::resnet20(10);
    let state = |seed| {
        let model = Classifier::new(&config, seed, &Device::Cpu).unwrap();
        model.state().unwrap()
    };
    let (a, b, c) = (state(5), state(5), state(6));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(flat(x), flat(y), "{name}");
    }
    let w =
        |s: &[(String, Tensor)], name: &str| flat(&s.iter().find(|(n, _)| n == name).unwrap().1);
    let conv = "layer3.2.conv2.weight";
    assert_ne!(w(&a, conv), w(&c, conv));
    let values = w(&a, conv); // 64 x 64 x 3 x 3, fan_out = 576
    let n = values.len() as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let want = 2.0 / 576.0;
    assert!(mean.abs() < 0.005, "mean {mean}");
    assert!(
        (var / want - 1.0).abs() < 0.05,
        "variance {var}, want {want}"
    );
    assert!(w(&a, "bn1.weight").iter().all(|v| *v == 1.0));
    assert!(w(&a, "layer1.0.bn2.running_var").iter().all(|v| *v == 1.0));
}

/// Option A: `x[:, :, ::2, ::2]` with channels padded half before, half after, on an
/// odd-sized input (5x5 -> 3x3); its gradient goes back to exactly those pixels.
#[test]
fn option_a_shortcut_subsamples_and_pads_channels() {
    let map = candle_nn::VarMap::new();
    let pb = semaug_eval::init::ParamBuilder::new(&map, 0, &Device::Cpu);
    let shortcut = semaug_eval::layers::OptionAShortcut::new(&pb, 2, 4, 2).unwrap();
    let values: Vec<f32> = (0..2 * 2 * 25).map(|v| v as f32).collect();
    let x = Tensor::from_vec(values, (2, 2, 5, 5), &Device::Cpu).unwrap();
    let x = Var::from_tensor(&x).unwrap();
    let y = shortcut.forward(&x).unwrap();
    assert_eq!(y.dims(), [2, 4, 3, 3]);
    let y = flat(&y);
    // Output channel c_out holds input channel c_out - 1 for c_out in 1..=2.
    for (k, value) in y.iter().enumerate() {
        let (n, c_out, i, j) = (k / 36, (k / 9) % 4, (k / 3) % 3, k % 3);
        let want = match c_out {
            1 | 2 => (n * 50 + (c_out - 1) * 25 + 2 * i * 5 + 2 * j) as f32,
            _ => 0.0,
        };
        assert_eq!(*value, want, "n {n} c {c_out} ({i}, {j})");
    }
    let w = Stream::new(3, 0, 0, 0)
        .normal_tensor((2, 4, 3, 3), &Device::Cpu)
        .unwrap();
    let loss = (shortcut.forward(&x).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap();
    let dx = flat(loss.backward().unwrap().get(x.as_tensor()).unwrap());
    let w = flat(&w);
    for (k, grad) in dx.iter().enumerate() {
        let (n, c, r, q) = (k / 50, (k / 25) % 2, (k / 5) % 5, k % 5);
        let want = match r % 2 == 0 && q % 2 == 0 {
            true => w[n * 36 + (c + 1) * 9 + (r / 2) * 3 + q / 2],
            false => 0.0,
        };
        assert_eq!(*grad, want, "dx n {n} c {c} ({r}, {q})");
    }
}

#[test]
fn weights_round_trip_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let config = ResNetConfig::resnet20(4).with_first_width(4);
    let model = Classifier::new(&config, 1, &Device::Cpu).unwrap();
    model.forward(&images(4, 16, 0), Mode::Train).unwrap(); // non-trivial running stats
    model.save(&path).unwrap();
    let other = Classifier::new(&config, 2, &Device::Cpu).unwrap();
    let x = images(3, 16, 9);
    let before = flat(&other.forward(&x, Mode::Eval).unwrap());
    other.load(&path).unwrap();
    let (a, b) = (model.state().unwrap(), other.state().unwrap());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(flat(x), flat(y), "{name}");
    }
    let after = flat(&other.forward(&x, Mode::Eval).unwrap());
    assert_eq!(after, flat(&model.forward(&x, Mode::Eval).unwrap()));
    assert_ne!(before, after);
    let names: HashMap<String, Tensor> =
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert!(names.contains_key("layer2.0.bn1.running_var") && names.contains_key("fc.bias"));

    // Another architecture: refused, naming the offending tensor, model untouched.
    let wider = Classifier::new(
        &ResNetConfig::resnet20(4).with_first_width(8),
        3,
        &Device::Cpu,
    )
    .unwrap();
    let untouched = flat(&wider.forward(&x, Mode::Eval).unwrap());
    match wider.load(&path) {
        Err(EvalError::WeightsMismatch { detail, .. }) => {
            assert!(detail.contains("shape"), "{detail}")
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    assert_eq!(flat(&wider.forward(&x, Mode::Eval).unwrap()), untouched);
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        model.load(&missing),
        Err(EvalError::Weights { .. })
    ));
}

#[test]
fn invalid_configs_are_rejected_with_the_valid_range() {
    let bad = [
        ResNetConfig {
            widths: vec![],
            blocks: vec![],
            ..ResNetConfig::resnet20(10)
        },
        ResNetConfig {
            widths: vec![32, 16],
            blocks: vec![1, 1],
            ..ResNetConfig::resnet20(10)
        },
        ResNetConfig {
            num_classes: 1,
            ..ResNetConfig::resnet20(10)
        },
        ResNetConfig {
            stem_stride: 0,
            ..ResNetConfig::resnet20(10)
        },
    ];
    for config in bad {
        match Classifier::new(&config, 0, &Device::Cpu) {
            Err(EvalError::Config { valid, .. }) => assert!(!valid.is_empty()),
            other => panic!("{config:?}: expected a config error, got {other:?}"),
        }
    }
    assert!(Arch::from_name("resnet-9000").is_err());
    assert_eq!(
        Arch::from_name("preact-resnet18").unwrap(),
        Arch::PreactResnet18
    );
}
