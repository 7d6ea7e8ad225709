//! Trainable construction: deterministic seeded init, PyTorch-like init statistics, and
//! gradients reaching every parameter (no fused op without a backward pass on the path).

mod common;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use common::{max_abs_diff, normal};
use semaug_models::unet::{UNet2DConfig, UNet2DModel};

fn build(seed: u64) -> (VarMap, UNet2DModel) {
    let varmap = VarMap::new();
    let model = UNet2DModel::trainable(&UNet2DConfig::test(), &varmap, seed, &Device::Cpu)
        .expect("test preset builds");
    (varmap, model)
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().expect("scalar")
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let (_, a) = build(3);
    let (_, b) = build(3);
    let (_, c) = build(4);
    for (name, wa) in a.weights() {
        assert_eq!(max_abs_diff(wa, &b.weights()[name]), 0.0, "{name}");
    }
    let w = "down_blocks.0.resnets.0.conv1.weight";
    assert!(max_abs_diff(&a.weights()[w], &c.weights()[w]) > 0.0);
}

#[test]
fn init_follows_pytorch_defaults() {
    let (_, model) = build(11);
    let w = model.weights();
    let max_abs = |name: &str| {
        scalar(
            &w[name]
                .abs()
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.max(0))
                .expect("max"),
        )
    };
    // conv1 of the first resnet: fan_in = 32 * 3 * 3, bound 1/sqrt(288).
    let bound = 1.0 / (288f32).sqrt();
    for name in [
        "down_blocks.0.resnets.0.conv1.weight",
        "down_blocks.0.resnets.0.conv1.bias",
    ] {
        let m = max_abs(name);
        assert!(
            m <= bound && m > 0.9 * bound,
            "{name}: max {m}, bound {bound}"
        );
    }
    // time_embedding.linear_2: fan_in 128.
    let m = max_abs("time_embedding.linear_2.weight");
    assert!(m <= 1.0 / 128f32.sqrt() && m > 0.9 / 128f32.sqrt());
    // Norms start as the identity.
    let ones = w["conv_norm_out.weight"].to_vec1::<f32>().expect("vec");
    let zeros = w["conv_norm_out.bias"].to_vec1::<f32>().expect("vec");
    assert!(ones.iter().all(|v| *v == 1.0) && zeros.iter().all(|v| *v == 0.0));
    // Class embedding ~ N(0, 1): 11 x 128 draws.
    let e = w["class_embedding.weight"]
        .flatten_all()
        .expect("flat")
        .to_vec1::<f32>()
        .expect("vec");
    let mean = e.iter().sum::<f32>() / e.len() as f32;
    let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / e.len() as f32;
    assert!(
        mean.abs() < 0.1 && (var - 1.0).abs() < 0.12,
        "mean {mean} var {var}"
    );
}

fn loss(model: &UNet2DModel, x: &Tensor, t: &Tensor, y: &Tensor, target: &Tensor) -> Tensor {
    let out = model.forward(x, t, Some(y)).expect("forward");
    (out - target)
        .and_then(|d| d.sqr())
        .and_then(|d| d.mean_all())
        .expect("loss")
}

#[test]
fn every_parameter_receives_a_gradient_and_it_is_the_true_gradient() {
    let (varmap, model) = build(5);
    let x = normal(&[2, 3, 16, 16], 20);
    let target = normal(&[2, 3, 16, 16], 21);
    let t = Tensor::new(&[37.5f32, 640.0], &Device::Cpu).expect("t");
    let y = Tensor::new(&[2i64, 10], &Device::Cpu).expect("labels");
    let l = loss(&model, &x, &t, &y, &target);
    let grads = l.backward().expect("backward");

    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(vars.len(), model.weights().len());
    let mut sq_norm = 0f64;
    for (name, var) in &vars {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let g2 = scalar(&g.sqr().and_then(|s| s.sum_all()).expect("norm"));
        assert!(
            g2.is_finite() && g2 > 0.0,
            "{name}: squared gradient norm {g2}"
        );
        sq_norm += g2 as f64;
    }

    // Directional derivative along the gradient: (L(w + eps g) - L(w - eps g)) / 2 eps ~ |g|^2.
    let eps = 1e-2 / sq_norm.sqrt();
    let originals: Vec<Tensor> = vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy().expect("copy"))
        .collect();
    let shifted = |sign: f64| {
        for ((_, var), w0) in vars.iter().zip(&originals) {
            let g = grads.get(var).expect("grad");
            var.set(&(w0 + (g * (sign * eps)).expect("step")).expect("shift"))
                .expect("set");
        }
        scalar(&loss(&model, &x, &t, &y, &target)) as f64
    };
    let (plus, minus) = (shifted(1.0), shifted(-1.0));
    let slope = (plus - minus) / (2.0 * eps);
    let rel = (slope - sq_norm).abs() / sq_norm;
    println!("directional derivative {slope:.6e} vs |g|^2 {sq_norm:.6e} (rel {rel:.2e})");
    assert!(
        rel < 0.02,
        "backward disagrees with finite differences: rel {rel}"
    );
}
