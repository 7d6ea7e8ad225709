//! BatchNorm: the fused CPU kernel against the composite of differentiable candle ops
//! (values, all gradients, running statistics), finite differences, and hand-computed
//! train / eval behaviour.

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use semaug_core::seeds::Stream;
use semaug_eval::init::ParamBuilder;
use semaug_eval::{BatchNorm2d, Mode, NormPath};

fn normal(seed: u64, shape: &[usize], scale: f32, shift: f32) -> Tensor {
    let t = Stream::new(seed, 0, 0, 0)
        .normal_tensor(shape, &Device::Cpu)
        .unwrap();
    t.affine(scale as f64, shift as f64).unwrap()
}

fn layer(channels: usize) -> BatchNorm2d {
    let map = VarMap::new();
    let bn = BatchNorm2d::new(&ParamBuilder::new(&map, 0, &Device::Cpu), channels, 1.0).unwrap();
    bn.weight.set(&normal(10, &[channels], 0.5, 1.0)).unwrap();
    bn.bias.set(&normal(11, &[channels], 0.5, 0.0)).unwrap();
    bn.running_mean
        .set(&normal(12, &[channels], 0.3, 0.2))
        .unwrap();
    bn.running_var
        .set(&normal(13, &[channels], 0.2, 1.0).abs().unwrap())
        .unwrap();
    bn
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

/// Output, gradients (x, gamma, beta, residual) and running stats after one pass.
fn run(
    path: NormPath,
    mode: Mode,
    residual: bool,
    relu: bool,
) -> (Vec<f32>, Vec<Vec<f32>>, Vec<f32>) {
    let shape = [3, 5, 4, 6];
    let bn = layer(5);
    let x = Var::from_tensor(&normal(1, &shape, 2.0, 0.7)).unwrap();
    let r = Var::from_tensor(&normal(2, &shape, 1.0, 0.0)).unwrap();
    let w = normal(3, &shape, 1.0, 0.0);
    let y = bn
        .apply(&x, residual.then_some(r.as_tensor()), relu, mode, path)
        .unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let grad = |t: &Tensor| grads.get(t).map(flat).unwrap_or_default();
    let all = vec![
        grad(x.as_tensor()),
        grad(bn.weight.as_tensor()),
        grad(bn.bias.as_tensor()),
        grad(r.as_tensor()),
    ];
    let mut stats = flat(bn.running_mean.as_tensor());
    stats.extend(flat(bn.running_var.as_tensor()));
    (flat(&y), all, stats)
}

#[test]
fn fused_kernel_matches_composite_values_and_gradients() {
    for mode in [Mode::Train, Mode::Eval] {
        for residual in [false, true] {
            for relu in [false, true] {
                let case = format!("{mode:?} residual={residual} relu={relu}");
                let (y_f, g_f, s_f) = run(NormPath::Fused, mode, residual, relu);
                let (y_c, g_c, s_c) = run(NormPath::Composite, mode, residual, relu);
                assert_close(&format!("{case} y"), &y_f, &y_c, 1e-5);
                for (k, name) in ["dx", "dgamma", "dbeta", "dresidual"].iter().enumerate() {
                    assert_close(&format!("{case} {name}"), &g_f[k], &g_c[k], 1e-4);
                }
                assert!(
                    !g_f[0].is_empty() && g_f[0].iter().any(|g| *g != 0.0),
                    "{case}: dx"
                );
                assert_eq!(
                    g_f[3].is_empty(),
                    !residual,
                    "{case}: residual grad presence"
                );
                assert_close(&format!("{case} running stats"), &s_f, &s_c, 1e-6);
            }
        }
    }
}

/// d/dx of sum(w * bn(x)) by central differences, train mode (where the batch
/// statistics depend on x) with a ReLU.
#[test]
fn fused_gradient_matches_finite_differences() {
    let shape = [2, 3, 2, 3];
    let bn = layer(3);
    let x0 = normal(4, &shape, 1.0, 0.3);
    let w = normal(5, &shape, 1.0, 0.0);
    let f = |x: &Tensor| -> f64 {
        let y = bn
            .apply(x, None, true, Mode::Train, NormPath::Fused)
            .unwrap();
        (&y * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let xv = Var::from_tensor(&x0).unwrap();
    let y = bn
        .apply(&xv, None, true, Mode::Train, NormPath::Fused)
        .unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let analytic = flat(grads.get(xv.as_tensor()).unwrap());
    let base = flat(&x0);
    let h = 1e-2f32;
    for i in [0, 5, 17, 30, 35] {
        let shifted = |delta: f32| {
            let mut v = base.clone();
            v[i] += delta;
            Tensor::from_vec(v, &shape, &Device::Cpu).unwrap()
        };
        let numeric = (f(&shifted(h)) - f(&shifted(-h))) / (2.0 * h as f64);
        let diff = (numeric - analytic[i] as f64).abs();
        assert!(
            diff < 2e-2 * (1.0 + numeric.abs()),
            "x[{i}]: numeric {numeric} vs {}",
            analytic[i]
        );
    }
}

/// One channel holding 1, 2, 3, 4: batch mean 2.5, biased variance 1.25, unbiased 5/3.
#[test]
fn train_mode_normalises_by_the_batch_and_updates_running_stats_by_hand() {
    let map = VarMap::new();
    let bn = BatchNorm2d::new(&ParamBuilder::new(&map, 0, &Device::Cpu), 1, 1.0).unwrap();
    bn.weight
        .set(&Tensor::new(&[2f32], &Device::Cpu).unwrap())
        .unwrap();
    bn.bias
        .set(&Tensor::new(&[0.5f32], &Device::Cpu).unwrap())
        .unwrap();
    let x = Tensor::from_vec(vec![1f32, 2.0, 3.0, 4.0], (2, 1, 1, 2), &Device::Cpu).unwrap();
    let y = flat(&bn.forward(&x, Mode::Train).unwrap());
    let rstd = 1.0 / (1.25f32 + 1e-5).sqrt();
    let expected: Vec<f32> = [1f32, 2.0, 3.0, 4.0]
        .iter()
        .map(|v| (v - 2.5) * rstd * 2.0 + 0.5)
        .collect();
    assert_close("train y", &y, &expected, 1e-6);
    let rm = flat(bn.running_mean.as_tensor())[0];
    let rv = flat(bn.running_var.as_tensor())[0];
    assert!((rm - 0.25).abs() < 1e-7, "running mean {rm}");
    assert!(
        (rv - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6,
        "running var {rv}"
    );
}

#[test]
fn eval_mode_uses_running_stats_and_changes_nothing() {
    let bn = layer(5);
    let x = normal(6, &[4, 5, 3, 3], 3.0, -1.0);
    let (rm, rv) = (
        flat(bn.running_mean.as_tensor()),
        flat(bn.running_var.as_tensor()),
    );
    let (g, b) = (flat(bn.weight.as_tensor()), flat(bn.bias.as_tensor()));
    let y = flat(&bn.forward(&x, Mode::Eval).unwrap());
    let xs = flat(&x);
    let expected: Vec<f32> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = (i / 9) % 5;
            (v - rm[c]) / (rv[c] + 1e-5).sqrt() * g[c] + b[c]
        })
        .collect();
    assert_close("eval y", &y, &expected, 1e-5);
    assert_eq!(
        flat(bn.running_mean.as_tensor()),
        rm,
        "eval must not touch running stats"
    );
    assert_eq!(flat(bn.running_var.as_tensor()), rv);

    // Eval: a sample's output ignores its batch mates. Train: it does not.
    let first = x.narrow(0, 0, 1).unwrap();
    let alone = flat(&bn.forward(&first, Mode::Eval).unwrap());
    assert_eq!(alone, y[..45].to_vec());
    let train_batch = flat(&bn.forward(&x, Mode::Train).unwrap());
    let train_alone = flat(&bn.forward(&first, Mode::Train).unwrap());
    let differs = train_alone
        .iter()
        .zip(&train_batch)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(differs, "train mode must depend on the batch");
    assert_ne!(
        flat(bn.running_mean.as_tensor()),
        rm,
        "train mode updates running stats"
    );
}

#[test]
fn train_mode_output_has_beta_mean_and_gamma_spread() {
    let bn = layer(4);
    let x = normal(7, &[8, 4, 5, 5], 4.0, 10.0); // a large mean must not hurt the variance
    let y = bn.forward(&x, Mode::Train).unwrap();
    let (g, b) = (flat(bn.weight.as_tensor()), flat(bn.bias.as_tensor()));
    let per_channel = y.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let mean = flat(&per_channel.mean(1).unwrap());
    let centered = per_channel
        .broadcast_sub(&per_channel.mean_keepdim(1).unwrap())
        .unwrap();
    let std = flat(&centered.sqr().unwrap().mean(1).unwrap().sqrt().unwrap());
    for c in 0..4 {
        assert!(
            (mean[c] - b[c]).abs() < 1e-4,
            "channel {c} mean {} vs beta {}",
            mean[c],
            b[c]
        );
        assert!(
            (std[c] - g[c].abs()).abs() < 1e-3,
            "channel {c} std {} vs |gamma| {}",
            std[c],
            g[c]
        );
    }
}
