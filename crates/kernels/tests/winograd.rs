//! The Winograd paths (3x3 stride-1 convs with at least 16 input channels, and upsample + conv)
//! against candle's direct conv2d: forward, all three gradients, and batch invariance.

mod common;

use candle_core::{Result, Tensor, Var};
use common::{assert_close, Lcg};
use semaug_kernels::{conv2d, upsample2x_conv3x3};

fn reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.conv2d(w, 1, 1, 1, 1)?
        .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)
}

fn upsampled_reference(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, _, h, wd) = x.dims4()?;
    reference(&x.upsample_nearest2d(2 * h, 2 * wd)?, w, b)
}

/// (batch, c_in, h, w, c_out): every case takes the Winograd path of conv2d.
const CASES: &[(usize, usize, usize, usize, usize)] = &[
    (3, 16, 8, 8, 3), // few output channels (a UNet's conv_out)
    (2, 16, 8, 8, 16),
    (3, 24, 6, 10, 17),   // non-square, odd c_out, 3 tiles per row
    (1, 16, 2, 2, 32),    // one tile
    (5, 32, 32, 32, 40),  // several blocks of tile rows, a partial last one
    (4, 128, 12, 12, 16), // blocks of one tile row
];

type ConvFn = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;

fn ours(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    conv2d(x, w, Some(b), 1, 1)
}

fn ours_upsampled(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    upsample2x_conv3x3(x, w, Some(b))
}

/// Forward and the gradients of x, w and b agree with `reference` within `tol`
/// (relative to the largest reference value).
fn check_against(
    conv: ConvFn,
    reference: ConvFn,
    dims: (usize, usize, usize, usize, usize),
    seed: u64,
) -> Result<()> {
    let (n, ci, h, w, co) = dims;
    let mut rng = Lcg(seed);
    let x = Var::from_tensor(&rng.tensor(&[n, ci, h, w])?)?;
    let wt = Var::from_tensor(&rng.tensor(&[co, ci, 3, 3])?)?;
    let b = Var::from_tensor(&rng.tensor(&[co])?)?;
    let what = format!("case {dims:?}");
    let y = conv(&x, &wt, &b)?;
    let want = reference(&x, &wt, &b)?;
    assert_close(&y, &want, 1e-5, &what)?;
    // A random weighting makes the upstream gradient non-uniform.
    let r = rng.tensor(want.dims())?;
    let got = (y * &r)?.sum_all()?.backward()?;
    let expected = (want * &r)?.sum_all()?.backward()?;
    for (name, var) in [("x", &x), ("w", &wt), ("b", &b)] {
        let (Some(g1), Some(g2)) = (got.get(var), expected.get(var)) else {
            panic!("{what}: missing grad for {name}");
        };
        assert_close(g1, g2, 1e-5, &format!("{what} grad {name}"))?;
    }
    Ok(())
}

#[test]
fn conv_matches_direct_conv_forward_and_gradients() -> Result<()> {
    for (i, &dims) in CASES.iter().enumerate() {
        check_against(ours, reference, dims, 100 + i as u64)?;
    }
    Ok(())
}

#[test]
fn upsampled_conv_matches_upsample_then_direct_conv() -> Result<()> {
    // (batch, c_in, h, w, c_out) before upsampling; odd sizes are fine here.
    let cases = [
        (2, 16, 4, 4, 16),
        (3, 20, 5, 3, 18),
        (1, 8, 1, 1, 4),
        (4, 64, 16, 16, 32),
    ];
    for (i, &dims) in cases.iter().enumerate() {
        check_against(ours_upsampled, upsampled_reference, dims, 200 + i as u64)?;
    }
    Ok(())
}

#[test]
fn input_constants_get_no_gradient_but_weights_do() -> Result<()> {
    let mut rng = Lcg(300);
    let x = rng.tensor(&[2, 16, 8, 8])?;
    let wt = Var::from_tensor(&rng.tensor(&[16, 16, 3, 3])?)?;
    let b = Var::from_tensor(&rng.tensor(&[16])?)?;
    let grads = ours(&x, &wt, &b)?.sum_all()?.backward()?;
    let expected = reference(&x, &wt, &b)?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    let (Some(g1), Some(g2)) = (grads.get(&wt), expected.get(&wt)) else {
        panic!("missing weight gradient");
    };
    assert_close(g1, g2, 1e-5, "weight grad without dx")
}

/// A sample's output is bitwise the same alone and inside a batch.
#[test]
fn outputs_do_not_depend_on_the_batch() -> Result<()> {
    let mut rng = Lcg(400);
    let x = rng.tensor(&[7, 32, 16, 16])?;
    let wt = rng.tensor(&[48, 32, 3, 3])?;
    let b = rng.tensor(&[48])?;
    for conv in [ours as ConvFn, ours_upsampled] {
        let batch = conv(&x, &wt, &b)?;
        for i in [0, 3, 6] {
            let alone = conv(&x.narrow(0, i, 1)?, &wt, &b)?;
            let diff = (alone - batch.narrow(0, i, 1)?)?.abs()?.max_all()?;
            assert_eq!(diff.to_scalar::<f32>()?, 0.0, "sample {i}");
        }
    }
    Ok(())
}
