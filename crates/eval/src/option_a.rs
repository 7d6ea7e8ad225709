//! The option-A shortcut's data movement as a candle custom op: `y[:, off + c] =
//! x[:, c, ::s, ::s]`, zeros in the other channels; its backward scatters the gradient
//! back (zeros at the skipped pixels). Pure copies, so it is exact and cheap.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Sizes of one option-A shortcut.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subsample {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// First output channel that receives input channel 0.
    pub offset: usize,
    pub stride: usize,
    pub h: usize,
    pub w: usize,
}

impl Subsample {
    pub fn out_h(&self) -> usize {
        self.h.div_ceil(self.stride)
    }

    pub fn out_w(&self) -> usize {
        self.w.div_ceil(self.stride)
    }

    fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Calls `copy(input index, output index)` for every kept pixel of image `n`'s
    /// channel `c`, relative to the image.
    fn for_each_pixel(&self, c: usize, mut copy: impl FnMut(usize, usize)) {
        let (s, ow) = (self.stride, self.out_w());
        for i in 0..self.out_h() {
            for j in 0..ow {
                let src = c * self.h * self.w + i * s * self.w + j * s;
                let dst = (self.offset + c) * self.out_plane() + i * ow + j;
                copy(src, dst);
            }
        }
    }
}

fn f32_data<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!(
            "option-A shortcut: expected f32 data, got {:?}",
            storage.dtype()
        );
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("option-A shortcut: expected a contiguous tensor"),
    }
}

/// Forward: `[N, c_in, H, W]` -> `[N, c_out, ceil(H / s), ceil(W / s)]`.
pub(crate) struct SubsampleOp(pub Subsample);

impl CustomOp1 for SubsampleOp {
    fn name(&self) -> &'static str {
        "semaug-option-a-shortcut"
    }

    fn cpu_fwd(&self, x: &CpuStorage, x_l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0;
        let x = f32_data(x, x_l)?;
        let (in_len, out_len) = (d.c_in * d.h * d.w, d.c_out * d.out_plane());
        let mut y = vec![0f32; d.batch * out_len];
        if out_len > 0 {
            y.par_chunks_mut(out_len).enumerate().for_each(|(n, out)| {
                let input = &x[n * in_len..(n + 1) * in_len];
                for c in 0..d.c_in {
                    d.for_each_pixel(c, |src, dst| out[dst] = input[src]);
                }
            });
        }
        let shape = Shape::from((d.batch, d.c_out, d.out_h(), d.out_w()));
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?.apply_op1_no_bwd(&ScatterOp(self.0))?,
        ))
    }
}

/// Backward: `[N, c_out, H', W']` -> `[N, c_in, H, W]`.
struct ScatterOp(Subsample);

impl CustomOp1 for ScatterOp {
    fn name(&self) -> &'static str {
        "semaug-option-a-shortcut-backward"
    }

    fn cpu_fwd(&self, dy: &CpuStorage, dy_l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0;
        let dy = f32_data(dy, dy_l)?;
        let (in_len, out_len) = (d.c_in * d.h * d.w, d.c_out * d.out_plane());
        let mut dx = vec![0f32; d.batch * in_len];
        if in_len > 0 {
            dx.par_chunks_mut(in_len).enumerate().for_each(|(n, out)| {
                let grad = &dy[n * out_len..(n + 1) * out_len];
                for c in 0..d.c_in {
                    d.for_each_pixel(c, |src, dst| out[src] = grad[dst]);
                }
            });
        }
        Ok((
            CpuStorage::F32(dx),
            Shape::from((d.batch, d.c_in, d.h, d.w)),
        ))
    }
}
