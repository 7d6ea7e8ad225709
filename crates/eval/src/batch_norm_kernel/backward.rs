//! The backward kernel of [`BatchNormOp`](super::BatchNormOp): per-channel sums of the
//! masked output gradient over the batch, then the input (and residual) gradients, each
//! one parallel pass over the images.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use rayon::prelude::*;

use super::{f32_data, per_image_sums, Dims};
use crate::simd::{avx2_dispatch, lane_sums2};

/// Where the backward finds the ReLU's mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MaskKind {
    /// No ReLU.
    None,
    /// `x * scale + shift > 0`.
    FromInput,
    /// `y > 0` (with a residual, whose value the backward does not have).
    FromOutput,
}

/// Gradients of [`BatchNormOp`] from `(x, dy)` or `(x, dy, y)`, packed as
/// `[dx | dresidual (when present) | dgamma | dbeta]`.
pub(super) struct BatchNormBackward {
    pub dims: Dims,
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
    pub batch_stats: bool,
    pub mask: MaskKind,
    pub with_residual: bool,
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
        let len = self.dims.image_len();
        per_image_sums(self.dims, |n, out| {
            image_sums(self.rows(x, dy, y, n * len..(n + 1) * len), out);
        })
        .into_iter()
        .unzip()
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

avx2_dispatch!(fn image_sums => image_sums_kernel(img: ImageRows<'_>, out: &mut [(f64, f64)]));

/// `(sum g, sum g * (x - mean))` of each channel row of one image (a plain loop: an
/// iterator adapter here would be compiled outside the AVX2 copy).
#[inline(always)]
fn image_sums_kernel(img: ImageRows<'_>, out: &mut [(f64, f64)]) {
    for (c, slot) in out.iter_mut().enumerate() {
        *slot = img.with_row(c, RowSums { mean: img.mean[c] });
    }
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
