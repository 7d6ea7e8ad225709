//! conv2d against candle's own conv2d (forward and autograd) and against finite
//! differences.

mod common;

use candle_core::{DType, Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::conv2d;

/// (batch, c_in, h, w, c_out, kernel, stride, padding)
type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

const CASES: &[Case] = &[
    (2, 3, 8, 8, 4, 3, 1, 1),    // 3x3 same
    (3, 5, 7, 9, 6, 3, 2, 1),    // stride 2, odd non-square input
    (2, 7, 6, 6, 3, 1, 1, 0),    // pointwise
    (2, 4, 9, 9, 5, 1, 2, 0),    // 1x1 stride 2 (ResNet shortcut)
    (1, 3, 5, 5, 2, 5, 1, 2),    // 5x5 kernel
    (4, 13, 11, 11, 7, 3, 2, 1), // odd channels and sizes
    (2, 6, 7, 7, 5, 2, 1, 0),    // even kernel, no padding
    (1, 2, 3, 3, 3, 3, 1, 0),    // 1x1 output
    (5, 3, 4, 4, 2, 3, 3, 2),    // stride 3, padding 2
    (9, 4, 6, 6, 5, 3, 1, 1),    // batch split into parallel chunks
    (8, 3, 9, 7, 4, 3, 2, 1),    // batch split, strided
];

fn reference(x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: usize, p: usize) -> Result<Tensor> {
    let y = x.conv2d(w, p, s, 1, 1)?;
    match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

#[test]
fn forward_matches_candle_conv2d() -> Result<()> {
    let mut rng = Lcg(1);
    for &(n, ci, h, w, co, k, s, p) in CASES {
        let x = rng.tensor(&[n, ci, h, w])?;
        let wt = rng.tensor(&[co, ci, k, k])?;
        let b = rng.tensor(&[co])?;
        let what = format!("case {:?}", (n, ci, h, w, co, k, s, p));
        let ours = conv2d(&x, &wt, None, s, p)?;
        assert_close(&ours, &reference(&x, &wt, None, s, p)?, 1e-4, &what)?;
        let ours = conv2d(&x, &wt, Some(&b), s, p)?;
        assert_close(&ours, &reference(&x, &wt, Some(&b), s, p)?, 1e-4, &what)?;
    }
    Ok(())
}

#[test]
fn gradients_match_candle_autograd() -> Result<()> {
    let mut rng = Lcg(2);
    for &(n, ci, h, w, co, k, s, p) in CASES {
        let x = Var::from_tensor(&rng.tensor(&[n, ci, h, w])?)?;
        let wt = Var::from_tensor(&rng.tensor(&[co, ci, k, k])?)?;
        let b = Var::from_tensor(&rng.tensor(&[co])?)?;
        // A random weighting makes the upstream gradient non-uniform.
        let out_shape = reference(&x, &wt, None, s, p)?.dims().to_vec();
        let r = rng.tensor(&out_shape)?;
        let loss = |y: Tensor| (y * &r)?.sum_all();
        let ours = loss(conv2d(&x, &wt, Some(&b), s, p)?)?.backward()?;
        let theirs = loss(reference(&x, &wt, Some(&b), s, p)?)?.backward()?;
        let what = format!("case {:?}", (n, ci, h, w, co, k, s, p));
        for (name, var) in [("x", &x), ("w", &wt), ("b", &b)] {
            let (Some(g1), Some(g2)) = (ours.get(var), theirs.get(var)) else {
                panic!("{what}: missing grad for {name}");
            };
            assert_close(g1, g2, 1e-4, &format!("{what} grad {name}"))?;
        }
    }
    Ok(())
}

#[test]
fn gradients_match_central_differences() -> Result<()> {
    let mut rng = Lcg(3);
    let x = rng.tensor(&[1, 2, 5, 5])?;
    let w = rng.tensor(&[3, 2, 3, 3])?;
    let b = rng.tensor(&[3])?;
    let r = rng.tensor(&[1, 3, 3, 3])?;
    let (stride, padding) = (2, 1);
    let loss = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<f32> {
        (conv2d(x, w, Some(b), stride, padding)? * &r)?
            .sum_all()?
            .to_scalar::<f32>()
    };
    let (xv, wv, bv) = (
        Var::from_tensor(&x)?,
        Var::from_tensor(&w)?,
        Var::from_tensor(&b)?,
    );
    let grads = (conv2d(&xv, &wv, Some(&bv), stride, padding)? * &r)?
        .sum_all()?
        .backward()?;
    let eps = 1e-2f32;
    for (name, which, var) in [("x", 0, &xv), ("w", 1, &wv), ("b", 2, &bv)] {
        let Some(analytic) = grads.get(var) else {
            panic!("missing grad for {name}");
        };
        let analytic = analytic.flatten_all()?.to_vec1::<f32>()?;
        let base = [&x, &w, &b][which];
        let values = base.flatten_all()?.to_vec1::<f32>()?;
        for (i, &g) in analytic.iter().enumerate() {
            let nudged = |delta: f32| -> Result<Tensor> {
                let mut v = values.clone();
                v[i] += delta;
                Tensor::from_vec(v, base.dims(), base.device())
            };
            let mut args_plus = [x.clone(), w.clone(), b.clone()];
            let mut args_minus = args_plus.clone();
            args_plus[which] = nudged(eps)?;
            args_minus[which] = nudged(-eps)?;
            let [xp, wp, bp] = &args_plus;
            let [xm, wm, bm] = &args_minus;
            let numeric = (loss(xp, wp, bp)? - loss(xm, wm, bm)?) / (2.0 * eps);
            assert!(
                (numeric - g).abs() <= 2e-3 * (1.0 + g.abs()),
                "grad {name}[{i}]: analytic {g} numeric {numeric}"
            );
        }
    }
    Ok(())
}

#[test]
fn constant_input_gets_no_grad_but_weights_do() -> Result<()> {
    let mut rng = Lcg(4);
    let x = rng.tensor(&[2, 3, 6, 6])?;
    let w = Var::from_tensor(&rng.tensor(&[4, 3, 3, 3])?)?;
    let grads = conv2d(&x, &w, None, 1, 1)?.sqr()?.sum_all()?.backward()?;
    let want = x.conv2d(&w, 1, 1, 1, 1)?.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    let (Some(ours), Some(theirs)) = (grads.get(&w), want.get(&w)) else {
        panic!("missing weight grad");
    };
    assert_close(ours, theirs, 1e-4, "weight grad with constant input")
}

#[test]
fn non_contiguous_inputs_are_handled() -> Result<()> {
    let mut rng = Lcg(5);
    let x = rng.tensor(&[2, 6, 7, 3])?.permute((0, 3, 1, 2))?; // [2, 3, 6, 7] view
    let w = rng.tensor(&[3, 4, 3, 3])?.transpose(0, 1)?; // [4, 3, 3, 3] view
    assert!(!x.is_contiguous() && !w.is_contiguous());
    let ours = conv2d(&x, &w, None, 2, 1)?;
    assert_close(
        &ours,
        &reference(&x, &w, None, 2, 1)?,
        1e-4,
        "permuted views",
    )
}

#[test]
fn wrong_dtype_and_shapes_are_clear_errors() -> Result<()> {
    let mut rng = Lcg(6);
    let x = rng.tensor(&[1, 3, 5, 5])?;
    let w = rng.tensor(&[2, 3, 3, 3])?;
    let err = conv2d(&x.to_dtype(DType::F64)?, &w, None, 1, 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("f32") && err.contains("F64"), "{err}");
    let err = conv2d(&x, &rng.tensor(&[2, 4, 3, 3])?, None, 1, 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("`w`") && err.contains("[2, 4, 3, 3]"), "{err}");
    assert!(conv2d(&x, &w, Some(&rng.tensor(&[3])?), 1, 1).is_err());
    assert!(conv2d(&x, &w, None, 0, 1).is_err());
    assert!(conv2d(&rng.tensor(&[1, 3, 2, 2])?, &w, None, 1, 0).is_err());
    Ok(())
}
