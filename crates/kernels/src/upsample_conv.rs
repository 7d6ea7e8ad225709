//! Nearest 2x upsampling followed by a 3x3 conv (the usual UNet up block), computed as
//! one stride-2 transposed conv with a 4x4 kernel folded from the 3x3 one.
//!
//! Output row `2i` of conv3x3(up(x)) reads input rows `i - 1` (tap 0) and `i` (taps 1
//! and 2); row `2i + 1` reads `i` (taps 0 and 1) and `i + 1` (tap 2). That is exactly
//! conv_transpose2d(stride 2, padding 1) with kernel rows `[w2, w1 + w2, w0 + w1, w0]`,
//! and the same along columns. It needs 4 instead of 9 multiply-adds per output pixel and
//! channel pair, and never materialises the upsampled tensor.

use candle_core::Tensor;

use crate::conv_transpose2d::conv_transpose2d;
use crate::error::KernelError;

const OP: &str = "semaug_kernels::upsample2x_conv3x3";

/// `conv2d(upsample_nearest2d(x, 2H, 2W), w, bias, stride 1, padding 1)` for `x`
/// `[N, C_in, H, W]`, `w` `[C_out, C_in, 3, 3]`, `bias` `[C_out]`; output
/// `[N, C_out, 2H, 2W]`. Differentiable in `x`, `w` and `bias` (the gradient of `w` flows
/// through the small kernel fold, built from candle ops).
pub fn upsample2x_conv3x3(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let &[c_out, c_in, 3, 3] = w.dims() else {
        return Err(KernelError::BadShape {
            op: OP,
            arg: "w",
            shape: w.dims().to_vec(),
            expected: "[C_out, C_in, 3, 3]".into(),
        }
        .into());
    };
    let folded = fold_kernel(w, c_out, c_in)?;
    conv_transpose2d(x, &folded, bias, 2, 1, 0)
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
