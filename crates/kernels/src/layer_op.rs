//! The candle plumbing every layer kernel `y = f(x, w) (+ bias)` shares (conv2d,
//! conv_transpose2d, upsample2x_conv3x3, linear): dtype checks, contiguous inputs, and
//! one custom op that runs as candle's two-argument op without a bias and as its
//! three-argument op with one, handing the kernel f32 slices and routing its gradients.
//!
//! Each kernel only says how to compute its output from slices and how to get its
//! gradients ([`LayerKernel`]); the op is generic over it, so there is no dynamic call.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::storage::{f32_slice, require_f32};

/// Gradients `(dx, dw, db)`: `dx` is `None` for a constant input, `db` is `None`
/// without a bias.
pub(crate) type LayerGrads = (Option<Tensor>, Tensor, Option<Tensor>);

/// One layer kernel on CPU f32 data.
pub(crate) trait LayerKernel: Send + Sync + 'static {
    /// The public function, for error messages (`semaug_kernels::conv2d`).
    const OP: &'static str;
    /// Candle's names of the op without and with a bias.
    const NAMES: [&'static str; 2];

    /// `f(x, w) (+ bias)` from contiguous data.
    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32>;

    fn output_shape(&self) -> Shape;

    /// Gradients of the output for `x`, `w` and, when `has_bias`, the bias.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<LayerGrads>;
}

/// Runs `kernel` on CPU tensors `x`, `w` and an optional `bias`, all of which must be f32.
pub(crate) fn apply<K: LayerKernel>(
    kernel: K,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    require_f32(K::OP, "x", x)?;
    require_f32(K::OP, "w", w)?;
    let op = LayerOp(kernel);
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match bias {
        Some(b) => {
            require_f32(K::OP, "bias", b)?;
            x.apply_op3(&w, &b.contiguous()?, op)
        }
        None => x.apply_op2(&w, op),
    }
}

/// `y + bias` with the bias broadcast over NCHW channels: the other devices' fallback.
pub(crate) fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// The custom op around a kernel (a wrapper because candle's op traits are foreign).
struct LayerOp<K>(K);

impl<K: LayerKernel> CustomOp2 for LayerOp<K> {
    fn name(&self) -> &'static str {
        K::NAMES[0]
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(K::OP, "x", x, x_l)?;
        let w = f32_slice(K::OP, "w", w, w_l)?;
        let y = self.0.forward(x, w, None);
        Ok((CpuStorage::F32(y), self.0.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.0.backward(x, w, grad, false)?;
        Ok((dx, Some(dw)))
    }
}

impl<K: LayerKernel> CustomOp3 for LayerOp<K> {
    fn name(&self) -> &'static str {
        K::NAMES[1]
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(K::OP, "x", x, x_l)?;
        let w = f32_slice(K::OP, "w", w, w_l)?;
        let b = f32_slice(K::OP, "bias", b, b_l)?;
        let y = self.0.forward(x, w, Some(b));
        Ok((CpuStorage::F32(y), self.0.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.0.backward(x, w, grad, true)?;
        Ok((dx, Some(dw), db))
    }
}
