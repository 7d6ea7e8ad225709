//! upsample2x_conv3x3 against candle's upsample_nearest2d followed by conv2d.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::upsample2x_conv3x3;

fn reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    x.upsample_nearest2d(2 * h, 2 * wd)?
        .conv2d(w, 1, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)
}

/// (batch, c_in, h, w, c_out)
const CASES: &[(usize, usize, usize, usize, usize)] = &[
    (2, 3, 4, 4, 5),
    (1, 6, 3, 5, 2),
    (3, 2, 1, 1, 4),
    (2, 4, 7, 6, 3),
];

#[test]
fn matches_upsample_then_conv_forward_and_gradients() -> Result<()> {
    let mut rng = Lcg(31);
    for &(n, ci, h, w, co) in CASES {
        let x = Var::from_tensor(&rng.tensor(&[n, ci, h, w])?)?;
        let wt = Var::from_tensor(&rng.tensor(&[co, ci, 3, 3])?)?;
        let b = Var::from_tensor(&rng.tensor(&[co])?)?;
        let what = format!("case {:?}", (n, ci, h, w, co));
        let ours = upsample2x_conv3x3(&x, &wt, Some(&b))?;
        let want = reference(&x, &wt, &b)?;
        assert_close(&ours, &want, 1e-4, &what)?;
        let r = rng.tensor(want.dims())?;
        let ours = (ours * &r)?.sum_all()?.backward()?;
        let theirs = (want * &r)?.sum_all()?.backward()?;
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
fn rejects_kernels_other_than_3x3() -> Result<()> {
    let mut rng = Lcg(32);
    let x = rng.tensor(&[1, 2, 4, 4])?;
    let err = upsample2x_conv3x3(&x, &rng.tensor(&[3, 2, 5, 5])?, None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("[3, 2, 5, 5]") && err.contains("3, 3]"),
        "{err}"
    );
    Ok(())
}
