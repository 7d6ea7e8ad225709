//! Nearest 2x upsampling followed by a 3x3 conv (the usual UNet up block) as one op that
//! never materialises the upsampled tensor.
//!
//! On CPU it is a Winograd F(2x2, 3x3) conv that reads the low-resolution input (see
//! `winograd`): 9 multiply-adds per 2x2 output tile and channel pair instead of the
//! upsampled conv's 36, with its own backward.
//!
//! Elsewhere it is a stride-2 transposed conv with a 4x4 kernel folded from the 3x3 one:
//! output row `2i` of conv3x3(up(x)) reads input rows `i - 1` (tap 0) and `i` (taps 1
//! and 2); row `2i + 1` reads `i` (taps 0 and 1) and `i + 1` (tap 2). That is exactly
//! conv_transpose2d(stride 2, padding 1) with kernel rows `[w2, w1 + w2, w0 + w1, w0]`,
//! and the same along columns.

use candle_core::{Shape, Tensor};

use crate::conv_grads::{conv_grads, ConvMap};
use crate::conv_transpose2d::conv_transpose2d;
use crate::error::KernelError;
use crate::layer_op::{self, LayerGrads, LayerKernel};
use crate::winograd::{self, Winograd};

const OP: &str = "semaug_kernels::upsample2x_conv3x3";

/// `conv2d(upsample_nearest2d(x, 2H, 2W), w, bias, stride 1, padding 1)` for `x`
/// `[N, C_in, H, W]`, `w` `[C_out, C_in, 3, 3]`, `bias` `[C_out]`; output
/// `[N, C_out, 2H, 2W]`. Differentiable in `x`, `w` and `bias`.
pub fn upsample2x_conv3x3(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let geometry = check_shapes(x, w, bias)?;
    if !x.device().is_cpu() {
        let folded = fold_kernel(w, geometry.c_out, geometry.c_in)?;
        return conv_transpose2d(x, &folded, bias, 2, 1, 0);
    }
    layer_op::apply(UpsampleConvOp { geometry }, x, w, bias)
}

fn check_shapes(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Winograd, KernelError> {
    let bad_shape =
        |arg, t: &Tensor, expected: String| KernelError::bad_shape(OP, arg, t, expected);
    let &[c_out, c_in, 3, 3] = w.dims() else {
        return Err(bad_shape("w", w, "[C_out, C_in, 3, 3]".into()));
    };
    let &[batch, x_c_in, h, w_in] = x.dims() else {
        return Err(bad_shape("x", x, "rank 4 [N, C_in, H, W]".into()));
    };
    if x_c_in != c_in || h == 0 || w_in == 0 {
        let expected = format!("[N, {c_in}, H >= 1, W >= 1] to match w");
        return Err(bad_shape("x", x, expected));
    }
    if let Some(b) = bias {
        if b.dims() != [c_out] {
            return Err(bad_shape("bias", b, format!("[{c_out}] (C_out of w)")));
        }
    }
    Ok(Winograd {
        batch,
        c_in,
        c_out,
        h,
        w: w_in,
        upsampled: true,
    })
}

/// `[C_out, C_in, 3, 3]` -> the `[C_in, C_out, 4, 4]` transposed-conv kernel
/// `K = F w F^T` per channel pair, with `F` mapping 3 taps to 4 (see the module doc).
fn fold_kernel(w: &Tensor, c_out: usize, c_in: usize) -> candle_core::Result<Tensor> {
    let taps: [f32; 12] = [
        0., 0., 1., //
        0., 1., 1., //
        1., 1., 0., //
        1., 0., 0., //
    ];
    let fold = Tensor::from_slice(&taps, (4, 3), w.device())?.to_dtype(w.dtype())?;
    let pairs = w.reshape((c_out * c_in, 3, 3))?;
    let rows = fold.broadcast_left(c_out * c_in)?.matmul(&pairs)?; // [n, 4, 3]
    let fold_t = fold.t()?.broadcast_left(c_out * c_in)?; // [n, 3, 4]
    rows.matmul(&fold_t)?
        .reshape((c_out, c_in, 4, 4))?
        .transpose(0, 1)?
        .contiguous()
}

/// The CPU op; its backward is [`conv_grads`].
struct UpsampleConvOp {
    geometry: Winograd,
}

impl LayerKernel for UpsampleConvOp {
    const OP: &'static str = OP;
    const NAMES: [&'static str; 2] = [
        "semaug-upsample2x-conv3x3",
        "semaug-upsample2x-conv3x3-bias",
    ];

    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        winograd::forward(&self.geometry, x, w, bias)
    }

    fn output_shape(&self) -> Shape {
        let g = &self.geometry;
        Shape::from((g.batch, g.c_out, g.out_h(), g.out_w()))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<LayerGrads> {
        conv_grads(ConvMap::Winograd(self.geometry), x, w, grad, has_bias)
    }
}
