//! The CPU kernel behind [`BatchNorm2d`](crate::batch_norm::BatchNorm2d): per-channel
//! statistics, and `relu?(x * scale + shift + residual?)` as one candle custom op whose
//! backward is one more kernel (two passes over the batch).
//!
//! The statistics are computed before the op and handed to it as constants; the backward
//! still differentiates through them in train mode (`batch_stats`), so the op computes
//! exactly the gradient of the composite in `batch_norm::composite`:
//!
//! - train: `dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))`,
//! - eval:  `dx = gamma * rstd * g`,
//!
//! where `g` is the incoming gradient masked by the ReLU and the means run over the
//! `N * H * W` values of a channel. `dgamma = sum(g * xhat)`, `dbeta = sum(g)`, and the
//! residual's gradient is `g`. Second-order gradients are not supported.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::simd::{avx2_dispatch, lane_sums2};

mod backward;

use backward::{BatchNormBackward, MaskKind};

/// Sizes of a `[N, C, H * W]` batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
}

impl Dims {
    fn image_len(&self) -> usize {
        self.channels * self.spatial
    }

    fn per_channel(&self) -> usize {
        self.batch * self.spatial
    }
}

/// Per-channel mean and biased variance of a contiguous `[N, C, HW]` batch.
///
/// Sums run on values shifted by the channel's value in the first pixel of the first
/// image (so a large mean does not cancel the variance away), in f32 lanes per row and
/// f64 across rows.
pub(crate) fn channel_stats(x: &[f32], d: Dims) -> (Vec<f64>, Vec<f64>) {
    let count = d.per_channel().max(1) as f64;
    let shift: Vec<f32> = (0..d.channels)
        .map(|c| x.get(c * d.spatial).copied().unwrap_or(0.0))
        .collect();
    let sums = per_image_sums(d, |n, out| {
        let image = &x[n * d.image_len()..(n + 1) * d.image_len()];
        shifted_sums(image, &shift, out);
    });
    sums.iter()
        .zip(&shift)
        .map(|(&(sum, sum_sq), &shift)| {
            let mean_shifted = sum / count;
            let var = (sum_sq / count - mean_shifted * mean_shifted).max(0.0);
            (mean_shifted + f64::from(shift), var)
        })
        .unzip()
}

/// Two per-channel sums over the batch: `image_sums(n, out)` writes image `n`'s
/// `(a, b)` per channel; images run in parallel (each a contiguous block, read in
/// order) and are added up in image order, so the result does not depend on threads.
pub(crate) fn per_image_sums(
    d: Dims,
    image_sums: impl Fn(usize, &mut [(f64, f64)]) + Sync,
) -> Vec<(f64, f64)> {
    let c = d.channels;
    let mut partial = vec![(0f64, 0f64); d.batch * c];
    if c > 0 {
        partial
            .par_chunks_mut(c)
            .enumerate()
            .for_each(|(n, out)| image_sums(n, out));
    }
    let mut total = vec![(0f64, 0f64); c];
    for image in partial.chunks_exact(c.max(1)) {
        for (t, p) in total.iter_mut().zip(image) {
            t.0 += p.0;
            t.1 += p.1;
        }
    }
    total
}

avx2_dispatch!(fn shifted_sums => shifted_sums_kernel(
    image: &[f32],
    shift: &[f32],
    out: &mut [(f64, f64)],
));

/// `(sum (x - shift_c), sum (x - shift_c)^2)` of each channel row of one image.
#[inline(always)]
fn shifted_sums_kernel(image: &[f32], shift: &[f32], out: &mut [(f64, f64)]) {
    let s = image.len() / out.len().max(1);
    for (c, slot) in out.iter_mut().enumerate() {
        let row = &image[c * s..(c + 1) * s];
        let shift = shift[c];
        *slot = lane_sums2(s, |i| {
            let v = row[i] - shift;
            (v, v * v)
        });
    }
}

/// The forward op: `y = relu?(x * scale_c + shift_c + residual?)` with
/// `scale = gamma * rstd`, `shift = beta - mean * scale`. Inputs: `x`, the affine
/// parameters packed as `[gamma | beta]` (`[2C]`), and optionally the residual.
pub(crate) struct BatchNormOp {
    pub dims: Dims,
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
    /// Train mode: the statistics are functions of `x` (matters for the backward).
    pub batch_stats: bool,
    pub relu: bool,
}

impl BatchNormOp {
    /// Per-channel `(scale, shift)` of the normalised affine map (shared by the forward
    /// and the backward, so the ReLU mask recomputed there matches bit for bit).
    fn scale_shift(&self, affine: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (gamma, beta) = affine.split_at(self.dims.channels);
        let scale: Vec<f32> = gamma.iter().zip(&self.rstd).map(|(g, r)| g * r).collect();
        let shift = (0..self.dims.channels)
            .map(|c| beta[c] - self.mean[c] * scale[c])
            .collect();
        (scale, shift)
    }

    fn forward(&self, x: &[f32], affine: &[f32], residual: Option<&[f32]>) -> Vec<f32> {
        let d = self.dims;
        let (scale, shift) = self.scale_shift(affine);
        let mut y = vec![0f32; x.len()];
        if d.image_len() == 0 {
            return y;
        }
        y.par_chunks_mut(d.image_len())
            .enumerate()
            .for_each(|(n, y_img)| {
                let range = n * d.image_len()..(n + 1) * d.image_len();
                let image = ForwardImage {
                    x: &x[range.clone()],
                    residual: residual.map(|r| &r[range]),
                    y: y_img,
                    scale: &scale,
                    shift: &shift,
                    spatial: d.spatial,
                    relu: self.relu,
                };
                normalize_image(image);
            });
        y
    }

    fn output(&self, y: Vec<f32>, x_l: &Layout) -> (CpuStorage, Shape) {
        (CpuStorage::F32(y), x_l.shape().clone())
    }

    /// The gradients for `(x, [gamma | beta], residual?)` from the output gradient.
    fn backward(
        &self,
        x: &Tensor,
        affine: &Tensor,
        with_residual: bool,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Option<Tensor>)> {
        let (scale, shift) = self.scale_shift(&affine.to_vec1::<f32>()?);
        let mask = match (self.relu, with_residual) {
            (false, _) => MaskKind::None,
            // Without a residual the ReLU's input is `x * scale + shift`: recomputing it
            // from `x` saves reading the output.
            (true, false) => MaskKind::FromInput,
            (true, true) => MaskKind::FromOutput,
        };
        let op = BatchNormBackward {
            dims: self.dims,
            mean: self.mean.clone(),
            rstd: self.rstd.clone(),
            scale,
            shift,
            batch_stats: self.batch_stats,
            mask,
            with_residual,
        };
        let grad = grad.contiguous()?;
        let packed = match mask {
            MaskKind::FromOutput => x.apply_op3_no_bwd(&grad, res, &op)?,
            _ => x.apply_op2_no_bwd(&grad, &op)?,
        };
        let len = x.elem_count();
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let mut offset = len;
        let dresidual = match with_residual {
            true => {
                offset += len;
                Some(packed.narrow(0, len, len)?.reshape(x.shape())?)
            }
            false => None,
        };
        let daffine = packed.narrow(0, offset, 2 * self.dims.channels)?;
        Ok((dx, daffine, dresidual))
    }
}

fn f32_data<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("batch_norm: expected f32 data, got {:?}", storage.dtype());
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("batch_norm: expected a contiguous tensor"),
    }
}

impl CustomOp2 for BatchNormOp {
    fn name(&self) -> &'static str {
        "semaug-batch-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        affine: &CpuStorage,
        affine_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = self.forward(f32_data(x, x_l)?, f32_data(affine, affine_l)?, None);
        Ok(self.output(y, x_l))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, daffine, _) = self.backward(x, affine, false, res, grad)?;
        Ok((Some(dx), Some(daffine)))
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "semaug-batch-norm-residual"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        affine: &CpuStorage,
        affine_l: &Layout,
        residual: &CpuStorage,
        residual_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let residual = f32_data(residual, residual_l)?;
        let y = self.forward(
            f32_data(x, x_l)?,
            f32_data(affine, affine_l)?,
            Some(residual),
        );
        Ok(self.output(y, x_l))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        _residual: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, daffine, dresidual) = self.backward(x, affine, true, res, grad)?;
        Ok((Some(dx), Some(daffine), dresidual))
    }
}

/// One image's slices for the forward pass.
struct ForwardImage<'a> {
    x: &'a [f32],
    residual: Option<&'a [f32]>,
    y: &'a mut [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    spatial: usize,
    relu: bool,
}

avx2_dispatch!(fn normalize_image => normalize_image_kernel(img: ForwardImage<'_>));

#[inline(always)]
fn normalize_image_kernel(img: ForwardImage<'_>) {
    let s = img.spatial;
    let rows = img.y.chunks_exact_mut(s).zip(img.x.chunks_exact(s));
    for (c, (y, x)) in rows.enumerate() {
        let (a, b) = (img.scale[c], img.shift[c]);
        match (img.residual, img.relu) {
            (Some(r), true) => {
                let r = &r[c * s..][..s];
                for i in 0..s {
                    y[i] = (x[i] * a + b + r[i]).max(0.0);
                }
            }
            (Some(r), false) => {
                let r = &r[c * s..][..s];
                for i in 0..s {
                    y[i] = x[i] * a + b + r[i];
                }
            }
            (None, true) => {
                for i in 0..s {
                    y[i] = (x[i] * a + b).max(0.0);
                }
            }
            (None, false) => {
                for i in 0..s {
                    y[i] = x[i] * a + b;
                }
            }
        }
    }
}
