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
/// Sums run on values shifted by the channel's first value (so a large mean does not
/// cancel the variance away), in f32 lanes per row and f64 across rows.
pub(crate) fn channel_stats(x: &[f32], d: Dims) -> (Vec<f64>, Vec<f64>) {
    let count = d.per_channel().max(1) as f64;
    let stats: Vec<(f64, f64)> = (0..d.channels)
        .into_par_iter()
        .map(|c| {
            let rows = (0..d.batch).map(|n| &x[n * d.image_len() + c * d.spatial..][..d.spatial]);
            let shift = x.get(c * d.spatial).copied().unwrap_or(0.0);
            let (mut sum, mut sum_sq) = (0f64, 0f64);
            for row in rows {
                let (s, q) = shifted_sums(row, shift);
                sum += s;
                sum_sq += q;
            }
            let mean_shifted = sum / count;
            let var = (sum_sq / count - mean_shifted * mean_shifted).max(0.0);
            (mean_shifted + f64::from(shift), var)
        })
        .collect();
    stats.into_iter().unzip()
}

avx2_dispatch!(fn shifted_sums => shifted_sums_kernel(row: &[f32], shift: f32) -> (f64, f64));

#[inline(always)]
fn shifted_sums_kernel(row: &[f32], shift: f32) -> (f64, f64) {
    lane_sums2(row.len(), |i| {
        let v = row[i] - shift;
        (v, v * v)
    })
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

/// Where the backward finds the ReLU's mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaskKind {
    /// No ReLU.
    None,
    /// `x * scale + shift > 0`.
    FromInput,
    /// `y > 0` (with a residual, whose value the backward does not have).
    FromOutput,
}

/// Gradients of [`BatchNormOp`] from `(x, dy)` or `(x, dy, y)`, packed as
/// `[dx | dresidual (when present) | dgamma | dbeta]`.
struct BatchNormBackward {
    dims: Dims,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    batch_stats: bool,
    mask: MaskKind,
    with_residual: bool,
}

impl CustomOp2 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "semaug-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        dy: &CpuStorage,
        dy_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let packed = self.run(f32_data(x, x_l)?, f32_data(dy, dy_l)?, None);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "semaug-batch-norm-backward-output"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        dy: &CpuStorage,
        dy_l: &Layout,
        y: &CpuStorage,
        y_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, dy, y) = (f32_data(x, x_l)?, f32_data(dy, dy_l)?, f32_data(y, y_l)?);
        let packed = self.run(x, dy, Some(y));
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

impl BatchNormBackward {
    fn run(&self, x: &[f32], dy: &[f32], y: Option<&[f32]>) -> Vec<f32> {
        let d = self.dims;
        let (len, c) = (x.len(), d.channels);
        let residual_len = if self.with_residual { len } else { 0 };
        let mut packed = vec![0f32; len + residual_len + 2 * c];
        if d.image_len() == 0 {
            return packed;
        }
        let (sum_g, sum_gx) = self.channel_sums(x, dy, y);
        let (grads, daffine) = packed.split_at_mut(len + residual_len);
        for ch in 0..c {
            daffine[ch] = (sum_gx[ch] * f64::from(self.rstd[ch])) as f32;
            daffine[c + ch] = sum_g[ch] as f32;
        }
        let (dx, dresidual) = grads.split_at_mut(len);
        let coefficients = self.input_coefficients(&sum_g, &sum_gx);
        let image_len = d.image_len();
        let run_image = |n: usize, dx_img: &mut [f32], dres_img: Option<&mut [f32]>| {
            let range = n * image_len..(n + 1) * image_len;
            let image = InputGradImage {
                rows: self.rows(x, dy, y, range),
                dx: dx_img,
                dresidual: dres_img,
                coefficients: &coefficients,
            };
            input_grad_image(image);
        };
        let dx_chunks = dx.par_chunks_mut(image_len).enumerate();
        match self.with_residual {
            true => dx_chunks
                .zip(dresidual.par_chunks_mut(image_len))
                .for_each(|((n, dx_img), dres_img)| run_image(n, dx_img, Some(dres_img))),
            false => dx_chunks.for_each(|(n, dx_img)| run_image(n, dx_img, None)),
        }
        packed
    }

    /// The read-only inputs of one image.
    fn rows<'a>(
        &'a self,
        x: &'a [f32],
        dy: &'a [f32],
        y: Option<&'a [f32]>,
        range: std::ops::Range<usize>,
    ) -> ImageRows<'a> {
        ImageRows {
            x: &x[range.clone()],
            dy: &dy[range.clone()],
            y: y.map(|y| &y[range]),
            mean: &self.mean,
            scale: &self.scale,
            shift: &self.shift,
            spatial: self.dims.spatial,
            mask: self.mask,
        }
    }

    /// Per-channel `sum(g)` and `sum(g * (x - mean))` over the batch (per image in
    /// parallel, then summed in image order so the result does not depend on threads).
    fn channel_sums(&self, x: &[f32], dy: &[f32], y: Option<&[f32]>) -> (Vec<f64>, Vec<f64>) {
        let d = self.dims;
        let c = d.channels;
        let partial: Vec<Vec<(f64, f64)>> = (0..d.batch)
            .into_par_iter()
            .map(|n| image_sums(self.rows(x, dy, y, n * d.image_len()..(n + 1) * d.image_len())))
            .collect();
        let (mut sum_g, mut sum_gx) = (vec![0f64; c], vec![0f64; c]);
        for image in partial {
            for (ch, (g, gx)) in image.into_iter().enumerate() {
                sum_g[ch] += g;
                sum_gx[ch] += gx;
            }
        }
        (sum_g, sum_gx)
    }

    /// `dx = a * g - k * x + b` per channel (see the module docs).
    fn input_coefficients(&self, sum_g: &[f64], sum_gx: &[f64]) -> Vec<[f32; 3]> {
        let count = self.dims.per_channel().max(1) as f64;
        (0..self.dims.channels)
            .map(|c| {
                let a = f64::from(self.scale[c]);
                if !self.batch_stats {
                    return [a as f32, 0.0, 0.0];
                }
                let rstd = f64::from(self.rstd[c]);
                let k = a * rstd * rstd * sum_gx[c] / count;
                let b = -a * sum_g[c] / count + k * f64::from(self.mean[c]);
                [a as f32, k as f32, b as f32]
            })
            .collect()
    }
}

/// One image's read-only inputs to the backward.
struct ImageRows<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    y: Option<&'a [f32]>,
    mean: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    spatial: usize,
    mask: MaskKind,
}

/// The output gradient of one row with the ReLU's mask applied; one type per mask kind,
/// so every row loop is monomorphised and vectorises.
trait GradMask {
    fn grad(&self, i: usize, dy: f32, x: f32) -> f32;
}

struct NoMask;

impl GradMask for NoMask {
    #[inline(always)]
    fn grad(&self, _: usize, dy: f32, _: f32) -> f32 {
        dy
    }
}

/// ReLU of `x * scale + shift`.
struct InputMask {
    scale: f32,
    shift: f32,
}

impl GradMask for InputMask {
    #[inline(always)]
    fn grad(&self, _: usize, dy: f32, x: f32) -> f32 {
        if x * self.scale + self.shift > 0.0 {
            dy
        } else {
            0.0
        }
    }
}

/// ReLU whose output row is known.
struct OutputMask<'a>(&'a [f32]);

impl GradMask for OutputMask<'_> {
    #[inline(always)]
    fn grad(&self, i: usize, dy: f32, _: f32) -> f32 {
        if self.0[i] > 0.0 {
            dy
        } else {
            0.0
        }
    }
}

impl ImageRows<'_> {
    /// Runs `kernel` on row `c` with its mask.
    #[inline(always)]
    fn with_row<R>(&self, c: usize, kernel: impl RowKernel<R>) -> R {
        let s = self.spatial;
        let range = c * s..(c + 1) * s;
        let (x, dy) = (&self.x[range.clone()], &self.dy[range.clone()]);
        match (self.mask, self.y) {
            (MaskKind::FromInput, _) => kernel.run(
                x,
                dy,
                InputMask {
                    scale: self.scale[c],
                    shift: self.shift[c],
                },
            ),
            (MaskKind::FromOutput, Some(y)) => kernel.run(x, dy, OutputMask(&y[range])),
            _ => kernel.run(x, dy, NoMask),
        }
    }
}

/// A loop over one row, generic over the mask.
trait RowKernel<R> {
    fn run<M: GradMask>(self, x: &[f32], dy: &[f32], mask: M) -> R;
}

/// `(sum g, sum g * (x - mean))` of a row.
struct RowSums {
    mean: f32,
}

impl RowKernel<(f64, f64)> for RowSums {
    #[inline(always)]
    fn run<M: GradMask>(self, x: &[f32], dy: &[f32], mask: M) -> (f64, f64) {
        let mean = self.mean;
        lane_sums2(x.len(), |i| {
            let g = mask.grad(i, dy[i], x[i]);
            (g, g * (x[i] - mean))
        })
    }
}

/// `dx = a * g - k * x + b` (and `dresidual = g`) for a row.
struct RowInputGrad<'a> {
    coefficients: [f32; 3],
    dx: &'a mut [f32],
    dresidual: Option<&'a mut [f32]>,
}

impl RowKernel<()> for RowInputGrad<'_> {
    #[inline(always)]
    fn run<M: GradMask>(self, x: &[f32], dy: &[f32], mask: M) {
        let [a, k, b] = self.coefficients;
        let n = x.len();
        let dx = &mut self.dx[..n];
        match self.dresidual {
            Some(dres) => {
                let dres = &mut dres[..n];
                for i in 0..n {
                    let g = mask.grad(i, dy[i], x[i]);
                    dx[i] = a * g - k * x[i] + b;
                    dres[i] = g;
                }
            }
            None => {
                for i in 0..n {
                    dx[i] = a * mask.grad(i, dy[i], x[i]) - k * x[i] + b;
                }
            }
        }
    }
}

avx2_dispatch!(fn image_sums => image_sums_kernel(img: ImageRows<'_>) -> Vec<(f64, f64)>);

#[inline(always)]
fn image_sums_kernel(img: ImageRows<'_>) -> Vec<(f64, f64)> {
    let channels = img.x.len() / img.spatial.max(1);
    (0..channels)
        .map(|c| img.with_row(c, RowSums { mean: img.mean[c] }))
        .collect()
}

/// One image's slices for the input gradients.
struct InputGradImage<'a> {
    rows: ImageRows<'a>,
    dx: &'a mut [f32],
    dresidual: Option<&'a mut [f32]>,
    coefficients: &'a [[f32; 3]],
}

avx2_dispatch!(fn input_grad_image => input_grad_image_kernel(img: InputGradImage<'_>));

#[inline(always)]
fn input_grad_image_kernel(img: InputGradImage<'_>) {
    let s = img.rows.spatial;
    let rows = img.dx.chunks_exact_mut(s).enumerate();
    let mut dresidual = img.dresidual.map(|d| d.chunks_exact_mut(s));
    for ((c, dx), &coefficients) in rows.zip(img.coefficients) {
        let dresidual = dresidual.as_mut().and_then(|d| d.next());
        let kernel = RowInputGrad {
            coefficients,
            dx,
            dresidual,
        };
        img.rows.with_row(c, kernel);
    }
}
