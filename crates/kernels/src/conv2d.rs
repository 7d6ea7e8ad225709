//! 2-D convolution as a candle custom op: im2col + gemm forward (bias fused), and a
//! backward that computes grad-w, grad-x (gemm + col2im) and grad-b in one pass over the
//! batch (see `conv_engine` and `conv_grads`). 3x3 stride-1 convs with enough channels
//! run as Winograd F(2x2, 3x3) instead (see `winograd`).

use candle_core::{Shape, Tensor};

use crate::conv_engine::forward;
use crate::conv_grads::{conv_grads, ConvMap};
use crate::error::KernelError;
use crate::im2col::ConvGeometry;
use crate::layer_op::{self, add_channel_bias, LayerGrads, LayerKernel};
use crate::winograd::{self, Winograd};

const OP: &str = "semaug_kernels::conv2d";

/// 2-D convolution of `x` (`[N, C_in, H, W]`) with `w` (`[C_out, C_in, kh, kw]`) plus an
/// optional `bias` (`[C_out]`); dilation 1, one group, the same stride and zero padding on
/// both axes. Differentiable in `x`, `w` and `bias`.
///
/// Runs the fast kernel on CPU f32 tensors; on other devices it falls back to candle's
/// `conv2d`. Other dtypes on CPU are an error.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let geometry = conv_geometry(x, w, bias, stride, padding)?;
    if !x.device().is_cpu() {
        return add_channel_bias(x.conv2d(w, padding, stride, 1, 1)?, bias);
    }
    layer_op::apply(Conv2dOp { geometry }, x, w, bias)
}

/// Checks the shapes and derives the geometry.
fn conv_geometry(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<ConvGeometry, KernelError> {
    let bad_shape =
        |arg, t: &Tensor, expected: String| KernelError::bad_shape(OP, arg, t, expected);
    let &[batch, c_in, h, w_in] = x.dims() else {
        return Err(bad_shape("x", x, "rank 4 [N, C_in, H, W]".into()));
    };
    let &[c_out, w_c_in, kh, kw] = w.dims() else {
        return Err(bad_shape("w", w, "rank 4 [C_out, C_in, kh, kw]".into()));
    };
    if w_c_in != c_in || c_in == 0 || kh == 0 || kw == 0 {
        let expected = format!("[C_out, {c_in}, kh >= 1, kw >= 1] to match x");
        return Err(bad_shape("w", w, expected));
    }
    if let Some(b) = bias {
        if b.dims() != [c_out] {
            return Err(bad_shape("bias", b, format!("[{c_out}] (C_out of w)")));
        }
    }
    if stride == 0 {
        let what = "stride must be at least 1".into();
        return Err(KernelError::BadParameter { op: OP, what });
    }
    if h + 2 * padding < kh || w_in + 2 * padding < kw {
        let expected = format!("H, W + 2 * padding ({padding}) >= kernel size {kh}x{kw}");
        return Err(bad_shape("x", x, expected));
    }
    Ok(ConvGeometry {
        batch,
        c_in,
        h,
        w: w_in,
        c_out,
        kh,
        kw,
        stride,
        padding,
        out_h: (h + 2 * padding - kh) / stride + 1,
        out_w: (w_in + 2 * padding - kw) / stride + 1,
    })
}

/// The forward op; its backward is [`conv_grads`].
struct Conv2dOp {
    geometry: ConvGeometry,
}

impl Conv2dOp {
    /// How this conv is computed.
    fn map(&self) -> ConvMap {
        match Winograd::for_conv(&self.geometry) {
            Some(wg) => ConvMap::Winograd(wg),
            None => ConvMap::Direct(self.geometry),
        }
    }
}

impl LayerKernel for Conv2dOp {
    const OP: &'static str = OP;
    const NAMES: [&'static str; 2] = ["semaug-conv2d", "semaug-conv2d-bias"];

    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        match self.map() {
            ConvMap::Winograd(wg) => winograd::forward(&wg, x, w, bias),
            _ => forward(&self.geometry, x, w, bias),
        }
    }

    fn output_shape(&self) -> Shape {
        let g = &self.geometry;
        Shape::from((g.batch, g.c_out, g.out_h, g.out_w))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<LayerGrads> {
        conv_grads(self.map(), x, w, grad, has_bias)
    }
}
