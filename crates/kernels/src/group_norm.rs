//! GroupNorm, optionally fused with SiLU, as one candle custom op with its own backward.
//!
//! Matches PyTorch / diffusers `GroupNorm`: biased variance, `eps` inside the square root,
//! per-channel affine `gamma`, `beta`. The backward recomputes the group statistics from
//! `x` (cheaper than storing them) and produces `[dx | dgamma | dbeta]` in one pass.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::KernelError;
use crate::simd::{avx2_dispatch, sigmoid, sum, sum_sq_dev};
use crate::storage::{f32_slice, require_f32};

const OP: &str = "semaug_kernels::group_norm";

/// `GroupNorm(num_groups)(x) * gamma + beta`, then SiLU when `silu` is set.
///
/// `x` is `[N, C, *]` (normally NCHW), `gamma` and `beta` are `[C]`, `C` must be a
/// multiple of `num_groups`. Differentiable in `x`, `gamma` and `beta`. The fused kernel
/// runs on CPU f32 tensors; other devices use an equivalent composite of candle ops.
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    silu: bool,
) -> candle_core::Result<Tensor> {
    let dims = NormDims::new(x, num_groups, gamma, beta, eps)?;
    if !x.device().is_cpu() {
        return composite(x, dims, gamma, beta, eps, silu);
    }
    for (arg, t) in [("x", x), ("gamma", gamma), ("beta", beta)] {
        require_f32(OP, arg, t)?;
    }
    let op = GroupNormOp {
        dims,
        eps: eps as f32,
        silu,
    };
    x.contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// The same function from candle's differentiable ops (for non-CPU devices).
fn composite(
    x: &Tensor,
    d: NormDims,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    silu: bool,
) -> candle_core::Result<Tensor> {
    let xg = x.reshape((d.batch, d.groups, d.group_len()))?;
    let centered = xg.broadcast_sub(&xg.mean_keepdim(2)?)?;
    let var = centered.sqr()?.mean_keepdim(2)?;
    let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    let affine_shape = (1, d.channels, d.spatial);
    let y = normed
        .reshape((d.batch, d.channels, d.spatial))?
        .broadcast_mul(&gamma.reshape(affine_shape)?)?
        .broadcast_add(&beta.reshape(affine_shape)?)?
        .reshape(x.shape())?;
    if silu {
        y.silu()
    } else {
        Ok(y)
    }
}

/// Sizes of a group-norm problem: `x` is `[batch, channels, spatial]` in memory.
#[derive(Clone, Copy, Debug)]
struct NormDims {
    batch: usize,
    channels: usize,
    groups: usize,
    spatial: usize,
}

impl NormDims {
    fn new(
        x: &Tensor,
        groups: usize,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<Self, KernelError> {
        let bad_shape = |arg, t: &Tensor, expected: String| KernelError::BadShape {
            op: OP,
            arg,
            shape: t.dims().to_vec(),
            expected,
        };
        let &[batch, channels, ref rest @ ..] = x.dims() else {
            return Err(bad_shape("x", x, "rank >= 2 [N, C, ...]".into()));
        };
        if groups == 0 || !channels.is_multiple_of(groups) {
            let what = format!("num_groups ({groups}) must divide the channel count ({channels})");
            return Err(KernelError::BadParameter { op: OP, what });
        }
        for (arg, t) in [("gamma", gamma), ("beta", beta)] {
            if t.dims() != [channels] {
                return Err(bad_shape(arg, t, format!("[{channels}] (channels of x)")));
            }
        }
        if !(eps.is_finite() && eps >= 0.0) {
            let what = format!("eps must be finite and >= 0, got {eps}");
            return Err(KernelError::BadParameter { op: OP, what });
        }
        Ok(NormDims {
            batch,
            channels,
            groups,
            spatial: rest.iter().product(),
        })
    }

    fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    fn group_len(&self) -> usize {
        self.channels_per_group() * self.spatial
    }

    fn image_len(&self) -> usize {
        self.channels * self.spatial
    }
}

struct GroupNormOp {
    dims: NormDims,
    eps: f32,
    silu: bool,
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "semaug-group-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        gamma: &CpuStorage,
        gamma_l: &Layout,
        beta: &CpuStorage,
        beta_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let gamma = f32_slice(OP, "gamma", gamma, gamma_l)?;
        let beta = f32_slice(OP, "beta", beta, beta_l)?;
        let y = self.forward(x, gamma, beta);
        Ok((CpuStorage::F32(y), x_l.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let affine = Tensor::cat(&[gamma.detach(), beta.detach()], 0)?;
        let op = GroupNormBackward {
            dims: self.dims,
            eps: self.eps,
            silu: self.silu,
        };
        let packed = x.apply_op3_no_bwd(&affine, &grad.contiguous()?, &op)?;
        let (n, c) = (x.elem_count(), self.dims.channels);
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, n, c)?;
        let dbeta = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

impl GroupNormOp {
    fn forward(&self, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
        let d = self.dims;
        let mut y = vec![0.0f32; x.len()];
        let (cg, group_len) = (d.channels_per_group(), d.group_len());
        if group_len == 0 {
            return y;
        }
        y.par_chunks_mut(group_len)
            .zip(x.par_chunks(group_len))
            .enumerate()
            .for_each(|(i, (y_group, x_group))| {
                let first_channel = (i % d.groups) * cg;
                let gamma = &gamma[first_channel..][..cg];
                let beta = &beta[first_channel..][..cg];
                let (eps, spatial) = (self.eps, d.spatial);
                match self.silu {
                    true => {
                        normalize_group_fast::<true>(x_group, y_group, gamma, beta, spatial, eps)
                    }
                    false => {
                        normalize_group_fast::<false>(x_group, y_group, gamma, beta, spatial, eps)
                    }
                }
            });
        y
    }
}

/// Mean and 1/sqrt(biased variance + eps) of one group (two-pass, lane sums).
#[inline(always)]
fn group_stats(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = (sum(x) / n) as f32;
    let var = sum_sq_dev(x, mean) / n;
    (mean, (1.0 / (var + f64::from(eps)).sqrt()) as f32)
}

avx2_dispatch!(normalize_group_fast => normalize_group<const SILU>(
    x: &[f32],
    y: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    spatial: usize,
    eps: f32,
));

#[inline(always)]
fn normalize_group<const SILU: bool>(
    x: &[f32],
    y: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    spatial: usize,
    eps: f32,
) {
    let (mean, rstd) = group_stats(x, eps);
    let rows = y.chunks_exact_mut(spatial).zip(x.chunks_exact(spatial));
    for ((y_row, x_row), (&g, &b)) in rows.zip(gamma.iter().zip(beta)) {
        let scale = g * rstd;
        for (out, &v) in y_row.iter_mut().zip(x_row) {
            let pre = (v - mean) * scale + b;
            *out = if SILU { pre * sigmoid(pre) } else { pre };
        }
    }
}

/// Gradients of [`GroupNormOp`] from `(x, [gamma | beta], dy)`, packed as
/// `[dx | dgamma | dbeta]`.
struct GroupNormBackward {
    dims: NormDims,
    eps: f32,
    silu: bool,
}

impl CustomOp3 for GroupNormBackward {
    fn name(&self) -> &'static str {
        "semaug-group-norm-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        affine: &CpuStorage,
        affine_l: &Layout,
        dy: &CpuStorage,
        dy_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let affine = f32_slice(OP, "gamma and beta", affine, affine_l)?;
        let dy = f32_slice(OP, "grad of the output", dy, dy_l)?;
        let packed = self.run(x, affine, dy);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

impl GroupNormBackward {
    fn run(&self, x: &[f32], affine: &[f32], dy: &[f32]) -> Vec<f32> {
        let d = self.dims;
        let c = d.channels;
        let (gamma, beta) = affine.split_at(c);
        let mut packed = vec![0.0f32; x.len() + 2 * c];
        let (dx, daffine) = packed.split_at_mut(x.len());
        // Per image: the image's share of dgamma then dbeta, summed over images below.
        let mut partial = vec![0.0f32; d.batch * 2 * c];
        if d.image_len() > 0 {
            dx.par_chunks_mut(d.image_len())
                .zip(partial.par_chunks_mut(2 * c))
                .enumerate()
                .for_each(|(n, (dx_img, partial_img))| {
                    let x_img = &x[n * d.image_len()..][..d.image_len()];
                    let dy_img = &dy[n * d.image_len()..][..d.image_len()];
                    let (dgamma, dbeta) = partial_img.split_at_mut(c);
                    let image = ImageGrads {
                        x: x_img,
                        dy: dy_img,
                        dx: dx_img,
                        dgamma,
                        dbeta,
                    };
                    match self.silu {
                        true => backward_image_fast::<true>(image, gamma, beta, d, self.eps),
                        false => backward_image_fast::<false>(image, gamma, beta, d, self.eps),
                    }
                });
            for partial_img in partial.chunks_exact(2 * c) {
                for (total, &p) in daffine.iter_mut().zip(partial_img) {
                    *total += p;
                }
            }
        }
        packed
    }
}

/// One image's slices for the backward pass.
struct ImageGrads<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
    dgamma: &'a mut [f32],
    dbeta: &'a mut [f32],
}

avx2_dispatch!(backward_image_fast => backward_image<const SILU>(
    img: ImageGrads<'_>,
    gamma: &[f32],
    beta: &[f32],
    d: NormDims,
    eps: f32,
));

/// dx for one image, plus its per-channel sums for dgamma and dbeta.
///
/// With xhat = (x - mean) * rstd and d the gradient at the affine output (before SiLU),
/// dx = rstd * (gamma * d - mean_g(gamma * d) - xhat * mean_g(gamma * d * xhat)).
#[inline(always)]
fn backward_image<const SILU: bool>(
    img: ImageGrads<'_>,
    gamma: &[f32],
    beta: &[f32],
    d: NormDims,
    eps: f32,
) {
    let (cg, s, len) = (d.channels_per_group(), d.spatial, d.group_len());
    let groups = img
        .x
        .chunks_exact(len)
        .zip(img.dy.chunks_exact(len))
        .zip(img.dx.chunks_exact_mut(len));
    for (g, ((x, dy), dx)) in groups.enumerate() {
        let (mean, rstd) = group_stats(x, eps);
        let channels = g * cg..(g + 1) * cg;
        let (mut sum_gd, mut sum_gd_xhat) = (0.0f64, 0.0f64);
        for (c, ((x_row, dy_row), d_row)) in channels.clone().zip(
            x.chunks_exact(s)
                .zip(dy.chunks_exact(s))
                .zip(dx.chunks_exact_mut(s)),
        ) {
            let row = RowAffine {
                mean,
                rstd,
                gamma: gamma[c],
                beta: beta[c],
            };
            let (sum_d, sum_d_xhat) = affine_output_grad::<SILU>(x_row, dy_row, d_row, row);
            img.dbeta[c] = sum_d as f32;
            img.dgamma[c] = sum_d_xhat as f32;
            sum_gd += f64::from(gamma[c]) * sum_d;
            sum_gd_xhat += f64::from(gamma[c]) * sum_d_xhat;
        }
        let mean_gd = (sum_gd / len as f64) as f32;
        let mean_gd_xhat = (sum_gd_xhat / len as f64) as f32;
        for (c, (x_row, d_row)) in channels.zip(x.chunks_exact(s).zip(dx.chunks_exact_mut(s))) {
            let g = gamma[c];
            for (out, &v) in d_row.iter_mut().zip(x_row) {
                let xhat = (v - mean) * rstd;
                *out = rstd * (g * *out - mean_gd - xhat * mean_gd_xhat);
            }
        }
    }
}

/// Normalisation constants of one channel row.
#[derive(Clone, Copy)]
struct RowAffine {
    mean: f32,
    rstd: f32,
    gamma: f32,
    beta: f32,
}

const LANES: usize = 8;

/// Writes d (gradient at the affine output, i.e. through SiLU when fused) into `d_out`
/// and returns (sum d, sum d * xhat) over the row.
#[inline(always)]
fn affine_output_grad<const SILU: bool>(
    x: &[f32],
    dy: &[f32],
    d_out: &mut [f32],
    a: RowAffine,
) -> (f64, f64) {
    // Two simple passes (a map, then two reductions) vectorise reliably; one fused loop
    // with a sigmoid and two reductions did not.
    let scale = a.rstd * a.gamma;
    let shift = a.beta - a.mean * scale;
    for ((d, &v), &g) in d_out.iter_mut().zip(x).zip(dy) {
        *d = if SILU {
            let pre = v * scale + shift;
            let s = sigmoid(pre);
            g * s * (1.0 + pre * (1.0 - s))
        } else {
            g
        };
    }
    let (mut acc_d, mut acc_dx) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (x_blocks, x_tail) = x.as_chunks::<LANES>();
    let (d_blocks, d_tail) = d_out.as_chunks::<LANES>();
    for (xb, db) in x_blocks.iter().zip(d_blocks) {
        for l in 0..LANES {
            acc_d[l] += db[l];
            acc_dx[l] += db[l] * ((xb[l] - a.mean) * a.rstd);
        }
    }
    let (mut sum_d, mut sum_dx) = (0.0f64, 0.0f64);
    for (&v, &d) in x_tail.iter().zip(d_tail) {
        sum_d += f64::from(d);
        sum_dx += f64::from(d * ((v - a.mean) * a.rstd));
    }
    let lanes = |acc: [f32; LANES]| acc.iter().map(|&v| f64::from(v)).sum::<f64>();
    (sum_d + lanes(acc_d), sum_dx + lanes(acc_dx))
}
