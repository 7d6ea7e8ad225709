//! A linear layer computed one sample at a time, as a candle custom op.
//!
//! `y[b] = x[b] W^T + bias` with one product per sample, so a sample's output does not
//! depend on the batch it is in (one product over all rows picks its kernel, and so its
//! summation order, by row count). Candle can only express this by materialising a copy
//! of `W` per sample; here each sample's product reads `W` in place. The backward needs
//! no such care and runs one product over all rows for `dx` and `dw`.

use candle_core::{Shape, Tensor};

use crate::error::KernelError;
use crate::layer_op::{self, LayerGrads, LayerKernel};
use crate::matmul::{matmul, DstLayout, Mat};
use crate::parallel::over_batch;

const OP: &str = "semaug_kernels::linear";

/// `x W^T + bias` for `x` `[B, N, in]` (or `[B, in]`), `w` `[out, in]`, `bias` `[out]`:
/// `[B, N, out]` (or `[B, out]`). Each sample `x[b]` is multiplied on its own, so its
/// output is bitwise the same in any batch. Differentiable in `x`, `w` and `bias`.
///
/// Runs on CPU f32 tensors; other devices use one batched candle matmul per sample group
/// with the same meaning.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let shape = LinearShape::new(x, w, bias)?;
    if !x.device().is_cpu() {
        let y = x.broadcast_matmul(&w.t()?)?;
        return match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    }
    layer_op::apply(LinearOp { shape }, x, w, bias)
}

/// Sizes of one linear call.
#[derive(Clone, Debug)]
struct LinearShape {
    batch: usize,
    rows: usize,
    inputs: usize,
    outputs: usize,
    /// The output shape (`x`'s with the last dimension replaced).
    out_dims: Vec<usize>,
}

impl LinearShape {
    fn new(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Self, KernelError> {
        let bad_shape =
            |arg, t: &Tensor, expected: String| KernelError::bad_shape(OP, arg, t, expected);
        let &[outputs, inputs] = w.dims() else {
            return Err(bad_shape("w", w, "rank 2 [out, in]".into()));
        };
        let (batch, rows) = match *x.dims() {
            [b, i] if i == inputs => (b, 1),
            [b, n, i] if i == inputs => (b, n),
            _ => {
                return Err(bad_shape(
                    "x",
                    x,
                    format!("[B, {inputs}] or [B, N, {inputs}]"),
                ))
            }
        };
        if let Some(b) = bias {
            if b.dims() != [outputs] {
                return Err(bad_shape("bias", b, format!("[{outputs}] (out of w)")));
            }
        }
        let mut out_dims = x.dims().to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = outputs;
        }
        Ok(LinearShape {
            batch,
            rows,
            inputs,
            outputs,
            out_dims,
        })
    }

    /// `y[b] = x[b] W^T (+ bias)`, one product per sample.
    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let (rows, inputs, outputs) = (self.rows, self.inputs, self.outputs);
        let mut y = vec![0.0f32; self.batch * rows * outputs];
        let w_t = Mat::row_major(w, outputs, inputs).t();
        over_batch(
            self.batch,
            &mut y,
            rows * outputs,
            |samples, y_chunk, par| {
                let per_sample = y_chunk.chunks_exact_mut((rows * outputs).max(1));
                for (sample, y_b) in samples.zip(per_sample) {
                    let x_b = Mat::row_major(&x[sample * rows * inputs..], rows, inputs);
                    matmul(y_b, DstLayout::RowMajor(outputs), x_b, w_t, false, par);
                    if let Some(bias) = bias {
                        for row in y_b.chunks_exact_mut(outputs.max(1)) {
                            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                        }
                    }
                }
            },
        );
        y
    }

    /// `(dx, dw, db)` from the output gradient, each one product over all rows.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        want_db: bool,
    ) -> candle_core::Result<LayerGrads> {
        let all_rows = self.batch * self.rows;
        let dy = grad.reshape((all_rows, self.outputs))?;
        // Constant inputs (e.g. data) need no gradient.
        let dx = match x.track_op() {
            true => Some(dy.matmul(&w.detach())?.reshape(x.shape())?),
            false => None,
        };
        let x = x.detach();
        let dw = dy.t()?.matmul(&x.reshape((all_rows, self.inputs))?)?;
        let db = match want_db {
            true => Some(dy.sum(0)?),
            false => None,
        };
        Ok((dx, dw, db))
    }
}

/// The forward op; its backward is [`LinearShape::backward`].
struct LinearOp {
    shape: LinearShape,
}

impl LayerKernel for LinearOp {
    const OP: &'static str = OP;
    const NAMES: [&'static str; 2] = ["semaug-linear", "semaug-linear-bias"];

    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        self.shape.forward(x, w, bias)
    }

    fn output_shape(&self) -> Shape {
        Shape::from(self.shape.out_dims.clone())
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<LayerGrads> {
        self.shape.backward(x, w, grad, has_bias)
    }
}
