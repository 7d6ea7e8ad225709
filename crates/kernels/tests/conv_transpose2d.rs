//! conv_transpose2d against candle's own conv_transpose2d (forward and autograd), against
//! its defining property (adjoint of conv2d) and against finite differences.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::{conv2d, conv_transpose2d};

/// (batch, c_in, h, w, c_out, kernel, stride, padding, output_padding)
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const CASES: &[Case] = &[
    (2, 3, 5, 5, 4, 3, 1, 1, 0), // same-size
    (2, 4, 4, 4, 3, 3, 2, 1, 1), // 2x upsample, 3x3
    (1, 5, 3, 4, 2, 4, 2, 1, 0), // 2x upsample, 4x4 (DCGAN style)
    (2, 3, 3, 3, 2, 1, 1, 0, 0), // pointwise
    (1, 2, 4, 3, 3, 2, 2, 0, 0), // 2x2 stride 2, no overlap
    (2, 3, 3, 5, 2, 3, 3, 2, 1), // stride 3, padding 2, odd sizes
    (1, 2, 2, 2, 3, 5, 1, 0, 0), // kernel larger than input
];

fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, case: &Case) -> Result<Tensor> {
    let &(.., s, p, op) = case;
    let y = x.conv_transpose2d(w, p, op, s, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

fn inputs(rng: &mut Lcg, case: &Case) -> Result<(Tensor, Tensor, Tensor)> {
    let &(n, ci, h, w, co, k, ..) = case;
    Ok((
        rng.tensor(&[n, ci, h, w])?,
        rng.tensor(&[ci, co, k, k])?,
        rng.tensor(&[co])?,
    ))
}

#[test]
fn forward_matches_candle_conv_transpose2d() -> Result<()> {
    let mut rng = Lcg(21);
    for case in CASES {
        let (x, w, b) = inputs(&mut rng, case)?;
        let &(.., s, p, op) = case;
        let what = format!("case {case:?}");
        let ours = conv_transpose2d(&x, &w, None, s, p, op)?;
        assert_close(&ours, &reference(&x, &w, None, case)?, 1e-4, &what)?;
        let ours = conv_transpose2d(&x, &w, Some(&b), s, p, op)?;
        assert_close(&ours, &reference(&x, &w, Some(&b), case)?, 1e-4, &what)?;
    }
    Ok(())
}

#[test]
fn is_the_adjoint_of_conv2d() -> Result<()> {
    // <conv_transpose(x), z> == <x, conv(z)> with the same weights.
    let mut rng = Lcg(22);
    for case in CASES {
        let (x, w, _) = inputs(&mut rng, case)?;
        let &(.., s, p, op) = case;
        let y = conv_transpose2d(&x, &w, None, s, p, op)?;
        let z = rng.tensor(y.dims())?;
        let lhs = (&y * &z)?.sum_all()?.to_scalar::<f32>()?;
        let rhs = (&x * conv2d(&z, &w, None, s, p)?)?
            .sum_all()?
            .to_scalar::<f32>()?;
        assert!(
            (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
            "{case:?}: {lhs} vs {rhs}"
        );
    }
    Ok(())
}

#[test]
fn gradients_match_candle_autograd() -> Result<()> {
    let mut rng = Lcg(23);
    for case in CASES {
        let (x, w, b) = inputs(&mut rng, case)?;
        let (x, w, b) = (
            Var::from_tensor(&x)?,
            Var::from_tensor(&w)?,
            Var::from_tensor(&b)?,
        );
        let &(.., s, p, op) = case;
        let r = rng.tensor(reference(&x, &w, None, case)?.dims())?;
        let loss = |y: Tensor| (y * &r)?.sum_all();
        let ours = loss(conv_transpose2d(&x, &w, Some(&b), s, p, op)?)?.backward()?;
        let theirs = loss(reference(&x, &w, Some(&b), case)?)?.backward()?;
        for (name, var) in [("x", &x), ("w", &w), ("b", &b)] {
            let what = format!("case {case:?} grad {name}");
            let (Some(g1), Some(g2)) = (ours.get(var), theirs.get(var)) else {
                panic!("{what}: missing");
            };
            assert_close(g1, g2, 1e-4, &what)?;
        }
    }
    Ok(())
}

#[test]
fn gradients_match_central_differences() -> Result<()> {
    let mut rng = Lcg(24);
    let case = (1, 2, 3, 3, 2, 3, 2, 1, 1);
    let (x, w, b) = inputs(&mut rng, &case)?;
    let r = rng.tensor(&[1, 2, 6, 6])?;
    let loss = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<f32> {
        (conv_transpose2d(x, w, Some(b), 2, 1, 1)? * &r)?
            .sum_all()?
            .to_scalar::<f32>()
    };
    let vars = [
        Var::from_tensor(&x)?,
        Var::from_tensor(&w)?,
        Var::from_tensor(&b)?,
    ];
    let grads = (conv_transpose2d(&vars[0], &vars[1], Some(&vars[2]), 2, 1, 1)? * &r)?
        .sum_all()?
        .backward()?;
    let base = [x, w, b];
    let eps = 1e-2f32;
    for (which, (name, var)) in ["x", "w", "b"].iter().zip(&vars).enumerate() {
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
                args[which] = Tensor::from_vec(v, base[which].dims(), base[which].device())?;
                loss(&args[0], &args[1], &args[2])
            };
            let numeric = (shifted(eps)? - shifted(-eps)?) / (2.0 * eps);
            assert!(
                (numeric - g).abs() <= 2e-3 * (1.0 + g.abs()),
                "grad {name}[{i}]: analytic {g} numeric {numeric}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_arguments_are_clear_errors() -> Result<()> {
    let mut rng = Lcg(25);
    let x = rng.tensor(&[1, 3, 4, 4])?;
    let w = rng.tensor(&[3, 2, 3, 3])?;
    let message = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let err = message(conv_transpose2d(
        &x,
        &rng.tensor(&[2, 2, 3, 3])?,
        None,
        1,
        1,
        0,
    ));
    assert!(err.contains("`w`") && err.contains("[2, 2, 3, 3]"), "{err}");
    let err = message(conv_transpose2d(&x, &w, None, 2, 1, 2));
    assert!(err.contains("output_padding"), "{err}");
    assert!(conv_transpose2d(&x, &w, Some(&rng.tensor(&[3])?), 1, 1, 0).is_err());
    assert!(conv_transpose2d(&x, &w, None, 1, 9, 0).is_err());
    Ok(())
}
