//! linear against candle's matmul + bias: forward, gradients, batch invariance, errors.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::linear;

fn reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.broadcast_matmul(&w.t()?)?.broadcast_add(b)
}

#[test]
fn matches_matmul_plus_bias_forward_and_gradients() -> Result<()> {
    let mut rng = Lcg(500);
    // (x dims, out features): rank 2 and rank 3 inputs, one row and many.
    let cases: [(&[usize], usize); 4] = [
        (&[5, 7], 3),
        (&[64, 256], 128),
        (&[3, 9, 16], 12),
        (&[2, 1, 4], 1),
    ];
    for (dims, out) in cases {
        let inputs = dims[dims.len() - 1];
        let x = Var::from_tensor(&rng.tensor(dims)?)?;
        let w = Var::from_tensor(&rng.tensor(&[out, inputs])?)?;
        let b = Var::from_tensor(&rng.tensor(&[out])?)?;
        let what = format!("x {dims:?} -> {out}");
        let ours = linear(&x, &w, Some(&b))?;
        let want = reference(&x, &w, &b)?;
        assert_close(&ours, &want, 1e-5, &what)?;
        let r = rng.tensor(want.dims())?;
        let got = (ours * &r)?.sum_all()?.backward()?;
        let expected = (want * &r)?.sum_all()?.backward()?;
        for (name, var) in [("x", &x), ("w", &w), ("b", &b)] {
            let (Some(g1), Some(g2)) = (got.get(var), expected.get(var)) else {
                panic!("{what}: missing grad for {name}");
            };
            assert_close(g1, g2, 1e-5, &format!("{what} grad {name}"))?;
        }
    }
    Ok(())
}

#[test]
fn without_bias_and_with_a_constant_input() -> Result<()> {
    let mut rng = Lcg(501);
    let x = rng.tensor(&[4, 6])?;
    let w = Var::from_tensor(&rng.tensor(&[5, 6])?)?;
    let ours = linear(&x, &w, None)?;
    let want = x.matmul(&w.t()?)?;
    assert_close(&ours, &want, 1e-5, "no bias")?;
    let grads = ours.sum_all()?.backward()?;
    let expected = want.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    let (Some(g1), Some(g2)) = (grads.get(&w), expected.get(&w)) else {
        panic!("missing weight gradient");
    };
    assert_close(g1, g2, 1e-5, "weight grad")
}

/// A sample's output is bitwise the same alone and inside batches of any size.
#[test]
fn outputs_do_not_depend_on_the_batch() -> Result<()> {
    let mut rng = Lcg(502);
    let w = rng.tensor(&[128, 256])?;
    let b = rng.tensor(&[128])?;
    for dims in [&[33, 256][..], &[9, 64, 256]] {
        let x = rng.tensor(dims)?;
        let batch = linear(&x, &w, Some(&b))?;
        for i in [0, 4, 7] {
            let alone = linear(&x.narrow(0, i, 1)?, &w, Some(&b))?;
            let pair = linear(&x.narrow(0, i, 2)?, &w, Some(&b))?.narrow(0, 0, 1)?;
            for other in [alone, pair] {
                let diff = (other - batch.narrow(0, i, 1)?)?.abs()?.max_all()?;
                assert_eq!(diff.to_scalar::<f32>()?, 0.0, "x {dims:?} sample {i}");
            }
        }
    }
    Ok(())
}

#[test]
fn mismatched_shapes_are_errors() -> Result<()> {
    let mut rng = Lcg(503);
    let w = rng.tensor(&[3, 4])?;
    for (x, b) in [
        (rng.tensor(&[2, 5])?, None),
        (rng.tensor(&[2, 4])?, Some(rng.tensor(&[4])?)),
    ] {
        let err = linear(&x, &w, b.as_ref())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("semaug_kernels::linear"), "{err}");
    }
    Ok(())
}
