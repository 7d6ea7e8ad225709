//! The backward of conv2d, conv_transpose2d and the Winograd convs as one no-backward
//! custom op: it returns `[dx | dw | db]` packed in one buffer, split here into views, so
//! computing the gradients adds no nodes to candle's graph.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::conv_engine::{conv_backward, transpose_backward, Wanted};
use crate::im2col::ConvGeometry;
use crate::layer_op::LayerGrads;
use crate::storage::f32_slice;
use crate::winograd::{self, Winograd};

/// Which map the forward op computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvMap {
    /// `y = conv(x, w)` by im2col + gemm.
    Direct(ConvGeometry),
    /// `y = conv_transpose(x, w)`, the direct conv's input gradient.
    Transposed(ConvGeometry),
    /// `y = conv3x3(x or up2x(x), w)` by Winograd F(2x2, 3x3).
    Winograd(Winograd),
}

/// Gradients of a conv op for its input `x`, weight `w` and optional bias, given the
/// output gradient `grad`. `dx` is skipped for inputs that are constants (e.g. images
/// fed to a first layer), which saves a third of the work.
pub(crate) fn conv_grads(
    map: ConvMap,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    has_bias: bool,
) -> candle_core::Result<LayerGrads> {
    let want = Wanted {
        dx: x.track_op(),
        db: has_bias,
    };
    let op = ConvGradsOp { map, want };
    let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &op)?;
    let dx_len = if want.dx { x.elem_count() } else { 0 };
    let dx = match want.dx {
        true => Some(packed.narrow(0, 0, dx_len)?.reshape(x.shape())?),
        false => None,
    };
    let dw = packed
        .narrow(0, dx_len, w.elem_count())?
        .reshape(w.shape())?;
    let db = match has_bias {
        true => {
            let start = dx_len + w.elem_count();
            Some(packed.narrow(0, start, packed.elem_count() - start)?)
        }
        false => None,
    };
    Ok((dx, dw, db))
}

struct ConvGradsOp {
    map: ConvMap,
    want: Wanted,
}

const OP: &str = "semaug_kernels conv backward";

impl CustomOp3 for ConvGradsOp {
    fn name(&self) -> &'static str {
        "semaug-conv-grads"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        dy: &CpuStorage,
        dy_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let w = f32_slice(OP, "w", w, w_l)?;
        let dy = f32_slice(OP, "grad of the output", dy, dy_l)?;
        let packed = match &self.map {
            ConvMap::Direct(g) => conv_backward(g, x, w, dy, self.want),
            ConvMap::Transposed(g) => transpose_backward(g, x, w, dy, self.want),
            ConvMap::Winograd(g) => winograd::backward(g, x, w, dy, self.want),
        };
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}
