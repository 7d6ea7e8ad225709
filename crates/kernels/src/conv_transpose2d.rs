//! 2-D transposed convolution as a candle custom op. It is the input gradient of a direct
//! conv (gemm + col2im), and its backward reuses the direct conv's forward and weight
//! gradient kernels with the roles of input and output swapped.

use candle_core::{Shape, Tensor};

use crate::conv_engine::input_grad;
use crate::conv_grads::{conv_grads, ConvMap};
use crate::error::KernelError;
use crate::im2col::ConvGeometry;
use crate::layer_op::{self, add_channel_bias, LayerGrads, LayerKernel};

const OP: &str = "semaug_kernels::conv_transpose2d";

/// Transposed 2-D convolution (PyTorch's `conv_transpose2d`) of `x` (`[N, C_in, H, W]`)
/// with `w` (`[C_in, C_out, kh, kw]`) plus an optional `bias` (`[C_out]`). The output is
/// `[N, C_out, (H - 1) * stride - 2 * padding + kh + output_padding, ...]`; dilation 1,
/// one group. Differentiable in `x`, `w` and `bias`.
///
/// Runs the fast kernel on CPU f32 tensors; on other devices it falls back to candle's
/// `conv_transpose2d`. Other dtypes on CPU are an error.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> candle_core::Result<Tensor> {
    let geometry = transposed_geometry(x, w, bias, stride, padding, output_padding)?;
    if !x.device().is_cpu() {
        let y = x.conv_transpose2d(w, padding, output_padding, stride, 1)?;
        return add_channel_bias(y, bias);
    }
    layer_op::apply(ConvTranspose2dOp { geometry }, x, w, bias)
}

/// Checks the shapes and derives the geometry of the direct conv this op transposes
/// (its input is our output, its output our input).
fn transposed_geometry(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<ConvGeometry, KernelError> {
    let bad_shape =
        |arg, t: &Tensor, expected: String| KernelError::bad_shape(OP, arg, t, expected);
    let bad_parameter = |what: String| KernelError::BadParameter { op: OP, what };
    let &[batch, c_in, h, w_in] = x.dims() else {
        return Err(bad_shape("x", x, "rank 4 [N, C_in, H, W]".into()));
    };
    let &[w_c_in, c_out, kh, kw] = w.dims() else {
        return Err(bad_shape("w", w, "rank 4 [C_in, C_out, kh, kw]".into()));
    };
    if w_c_in != c_in || c_out == 0 || kh == 0 || kw == 0 {
        let expected = format!("[{c_in}, C_out >= 1, kh >= 1, kw >= 1] to match x");
        return Err(bad_shape("w", w, expected));
    }
    if let Some(b) = bias {
        if b.dims() != [c_out] {
            return Err(bad_shape("bias", b, format!("[{c_out}] (C_out of w)")));
        }
    }
    if h == 0 || w_in == 0 {
        return Err(bad_shape("x", x, "H, W >= 1".into()));
    }
    if stride == 0 || output_padding >= stride {
        let what = format!("need stride >= 1 and output_padding < stride, got stride {stride}, output_padding {output_padding}");
        return Err(bad_parameter(what));
    }
    let out_len =
        |len: usize, k: usize| ((len - 1) * stride + k + output_padding).checked_sub(2 * padding);
    let (Some(out_h), Some(out_w)) = (out_len(h, kh), out_len(w_in, kw)) else {
        return Err(bad_parameter(format!("padding {padding} leaves no output")));
    };
    if out_h == 0 || out_w == 0 {
        return Err(bad_parameter(format!("padding {padding} leaves no output")));
    }
    Ok(ConvGeometry {
        batch,
        c_in: c_out,
        h: out_h,
        w: out_w,
        c_out: c_in,
        kh,
        kw,
        stride,
        padding,
        out_h: h,
        out_w: w_in,
    })
}

/// The forward op; its backward is [`conv_grads`].
struct ConvTranspose2dOp {
    geometry: ConvGeometry,
}

impl LayerKernel for ConvTranspose2dOp {
    const OP: &'static str = OP;
    const NAMES: [&'static str; 2] = ["semaug-conv-transpose2d", "semaug-conv-transpose2d-bias"];

    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        input_grad(&self.geometry, w, x, bias)
    }

    fn output_shape(&self) -> Shape {
        let g = &self.geometry;
        Shape::from((g.batch, g.c_in, g.h, g.w))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<LayerGrads> {
        conv_grads(ConvMap::Transposed(self.geometry), x, w, grad, has_bias)
    }
}
