//! group_norm against analytic values, candle's composite GroupNorm (forward and
//! autograd) and finite differences.

mod common;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::group_norm;

/// (shape, groups)
const CASES: &[(&[usize], usize)] = &[
    (&[2, 8, 5, 5], 4),
    (&[3, 6, 7, 3], 3),
    (&[2, 64, 8, 8], 32),
    (&[2, 5, 3, 3], 1), // one group: LayerNorm over C, H, W
    (&[2, 6, 4, 4], 6), // one channel per group: InstanceNorm
    (&[1, 4, 1, 1], 2), // two values per group
    (&[3, 12, 17], 4),  // rank 3
];

fn reference(
    x: &Tensor,
    groups: usize,
    gamma: &Tensor,
    beta: &Tensor,
    silu: bool,
) -> Result<Tensor> {
    let channels = x.dim(1)?;
    let norm = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), channels, groups, 1e-5)?;
    let y = norm.forward(x)?;
    if silu {
        y.silu()
    } else {
        Ok(y)
    }
}

#[test]
fn normalises_with_biased_variance_and_eps_inside_the_root() -> Result<()> {
    let dev = &Device::Cpu;
    let x = Tensor::new(&[[[1f32, 2.], [3., 4.]]], dev)?.reshape((1, 2, 2))?;
    let ones = Tensor::new(&[1f32, 1.], dev)?;
    let zeros = Tensor::new(&[0f32, 0.], dev)?;
    let eps = 0.75; // var = 1.25, so var + eps = 2 exactly
    let y = group_norm(&x, 1, &ones, &zeros, eps, false)?.flatten_all()?;
    let want: Vec<f32> = [1f32, 2., 3., 4.]
        .iter()
        .map(|v| (v - 2.5) / 2f32.sqrt())
        .collect();
    assert_close(
        &y,
        &Tensor::new(want.as_slice(), dev)?,
        1e-6,
        "analytic group norm",
    )?;
    // Per-channel affine, then SiLU: z = 2 * xhat + 1 on channel 1, -xhat on channel 2.
    let gamma = Tensor::new(&[2f32, -1.], dev)?;
    let beta = Tensor::new(&[1f32, 0.], dev)?;
    let y = group_norm(&x, 1, &gamma, &beta, eps, true)?.flatten_all()?;
    let want: Vec<f32> = want
        .iter()
        .enumerate()
        .map(|(i, &h)| if i < 2 { 2. * h + 1. } else { -h })
        .map(|z| z / (1. + (-z).exp()))
        .collect();
    assert_close(
        &y,
        &Tensor::new(want.as_slice(), dev)?,
        1e-6,
        "analytic affine + silu",
    )
}

#[test]
fn forward_matches_candle_group_norm() -> Result<()> {
    let mut rng = Lcg(11);
    for &(shape, groups) in CASES {
        // An offset and scale per case checks the statistics are not assumed standard.
        let x = ((rng.tensor(shape)? * 3.0)? + 0.5)?;
        let gamma = rng.tensor(&[shape[1]])?;
        let beta = rng.tensor(&[shape[1]])?;
        for silu in [false, true] {
            let ours = group_norm(&x, groups, &gamma, &beta, 1e-5, silu)?;
            let want = reference(&x, groups, &gamma, &beta, silu)?;
            assert_close(
                &ours,
                &want,
                1e-4,
                &format!("{shape:?} g{groups} silu {silu}"),
            )?;
        }
    }
    Ok(())
}

#[test]
fn gradients_match_candle_autograd() -> Result<()> {
    let mut rng = Lcg(12);
    for &(shape, groups) in CASES {
        let x = Var::from_tensor(&((rng.tensor(shape)? * 2.0)? - 0.3)?)?;
        let gamma = Var::from_tensor(&rng.tensor(&[shape[1]])?)?;
        let beta = Var::from_tensor(&rng.tensor(&[shape[1]])?)?;
        let r = rng.tensor(shape)?;
        for silu in [false, true] {
            let loss = |y: Tensor| (y * &r)?.sum_all();
            let ours = loss(group_norm(&x, groups, &gamma, &beta, 1e-5, silu)?)?.backward()?;
            let theirs = loss(reference(&x, groups, &gamma, &beta, silu)?)?.backward()?;
            for (name, var) in [("x", &x), ("gamma", &gamma), ("beta", &beta)] {
                let what = format!("{shape:?} g{groups} silu {silu} grad {name}");
                let (Some(g1), Some(g2)) = (ours.get(var), theirs.get(var)) else {
                    panic!("{what}: missing");
                };
                assert_close(g1, g2, 2e-4, &what)?;
            }
        }
    }
    Ok(())
}

#[test]
fn gradients_match_central_differences() -> Result<()> {
    let mut rng = Lcg(13);
    let x = rng.tensor(&[2, 4, 3, 3])?;
    let gamma = (rng.tensor(&[4])? + 1.5)?;
    let beta = rng.tensor(&[4])?;
    let r = rng.tensor(&[2, 4, 3, 3])?;
    let groups = 2;
    let loss = |x: &Tensor, gamma: &Tensor, beta: &Tensor| -> Result<f32> {
        (group_norm(x, groups, gamma, beta, 1e-5, true)? * &r)?
            .sum_all()?
            .to_scalar::<f32>()
    };
    let vars = [
        Var::from_tensor(&x)?,
        Var::from_tensor(&gamma)?,
        Var::from_tensor(&beta)?,
    ];
    let grads = (group_norm(&vars[0], groups, &vars[1], &vars[2], 1e-5, true)? * &r)?
        .sum_all()?
        .backward()?;
    let eps = 1e-2f32;
    let base = [x, gamma, beta];
    for (which, (name, var)) in ["x", "gamma", "beta"].iter().zip(&vars).enumerate() {
        let Some(analytic) = grads.get(var) else {
            panic!("missing grad for {name}");
        };
        let analytic = analytic.flatten_all()?.to_vec1::<f32>()?;
        let values = base[which].flatten_all()?.to_vec1::<f32>()?;
        for (i, &g) in analytic.iter().enumerate() {
            let shifted = |delta: f32| -> Result<f32> {
                let mut v = values.clone();
                v[i] += delta;
                let mut args = base.clone();
                args[which] = Tensor::from_vec(v, base[which].dims(), &Device::Cpu)?;
                loss(&args[0], &args[1], &args[2])
            };
            let numeric = (shifted(eps)? - shifted(-eps)?) / (2.0 * eps);
            assert!(
                (numeric - g).abs() <= 5e-3 * (1.0 + g.abs()),
                "grad {name}[{i}]: analytic {g} numeric {numeric}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_arguments_are_clear_errors() -> Result<()> {
    let mut rng = Lcg(14);
    let x = rng.tensor(&[2, 6, 4, 4])?;
    let (gamma, beta) = (rng.tensor(&[6])?, rng.tensor(&[6])?);
    let message = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let err = message(group_norm(&x, 4, &gamma, &beta, 1e-5, false));
    assert!(
        err.contains("num_groups (4)") && err.contains("(6)"),
        "{err}"
    );
    let err = message(group_norm(&x, 3, &rng.tensor(&[3])?, &beta, 1e-5, false));
    assert!(err.contains("`gamma`") && err.contains("[6]"), "{err}");
    let err = message(group_norm(
        &x.to_dtype(DType::F64)?,
        3,
        &gamma,
        &beta,
        1e-5,
        false,
    ));
    assert!(err.contains("f32") && err.contains("F64"), "{err}");
    assert!(group_norm(&x, 3, &gamma, &beta, -1.0, false).is_err());
    assert!(group_norm(&rng.tensor(&[6])?, 3, &gamma, &beta, 1e-5, false).is_err());
    Ok(())
}
