//! BatchNorm over the channels of NCHW tensors (Ioffe & Szegedy 2015), with PyTorch's
//! conventions: normalise by the batch's biased variance in train mode, keep running
//! statistics updated as `running = (1 - momentum) running + momentum batch` with the
//! *unbiased* variance, and normalise by those in eval mode (`momentum` 0.1, `eps` 1e-5,
//! parameter names `weight`, `bias`, `running_mean`, `running_var`).
//!
//! Running statistics are plain variables updated in place during a train-mode forward,
//! outside autograd; nothing else holds state, and the mode is an explicit argument.
//! On CPU the forward (optionally fused with a residual add and a ReLU) and its backward
//! are one kernel each (`batch_norm_kernel`); elsewhere, and as the reference the tests
//! check the kernel against, the same function is composed from differentiable candle
//! ops ([`NormPath::Composite`]). Neither uses candle's backward-less fused norms.

use candle_core::{DType, Result, Tensor, Var};

use crate::batch_norm_kernel::{channel_stats, BatchNormOp, Dims};
use crate::init::ParamBuilder;

/// Whether a forward pass trains (batch statistics, running statistics updated) or
/// evaluates (running statistics, nothing changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// How a BatchNorm is computed; both give the same values and gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormPath {
    /// The fused CPU kernel (f32 CPU tensors; falls back to `Composite` elsewhere).
    #[default]
    Fused,
    /// Composed from differentiable candle ops.
    Composite,
}

/// A `BatchNorm2d` layer: affine parameters `[C]` and running statistics `[C]`.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    pub weight: Var,
    pub bias: Var,
    pub running_mean: Var,
    pub running_var: Var,
    pub channels: usize,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm2d {
    /// `weight` = 1 (or `gamma_init`), `bias` = 0, running mean 0, running variance 1.
    pub fn new(pb: &ParamBuilder, channels: usize, gamma_init: f32) -> Result<Self> {
        Ok(Self {
            weight: pb.constant("weight", channels, gamma_init)?,
            bias: pb.constant("bias", channels, 0.0)?,
            running_mean: pb.constant("running_mean", channels, 0.0)?,
            running_var: pb.constant("running_var", channels, 1.0)?,
            channels,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// `x` `[N, C, H, W]` -> normalised `[N, C, H, W]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.apply(x, None, false, mode, NormPath::Fused)
    }

    /// `relu(bn(x))`, shapes as [`BatchNorm2d::forward`].
    pub fn forward_relu(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.apply(x, None, true, mode, NormPath::Fused)
    }

    /// `relu(bn(x) + residual)`, the end of a post-activation residual block; `x` and
    /// `residual` are both `[N, C, H, W]`.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, mode: Mode) -> Result<Tensor> {
        self.apply(x, Some(residual), true, mode, NormPath::Fused)
    }

    /// `relu?(bn(x) + residual?)` computed along `path`.
    pub fn apply(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
        mode: Mode,
        path: NormPath,
    ) -> Result<Tensor> {
        let (batch, channels, h, w) = x.dims4()?;
        if channels != self.channels {
            candle_core::bail!(
                "batch_norm: input has {channels} channels, layer has {}",
                self.channels
            );
        }
        if let Some(r) = residual {
            if r.dims() != x.dims() {
                candle_core::bail!(
                    "batch_norm: residual {:?} does not match input {:?}",
                    r.dims(),
                    x.dims()
                );
            }
        }
        let fused = path == NormPath::Fused && x.device().is_cpu() && x.dtype() == DType::F32;
        let dims = Dims {
            batch,
            channels,
            spatial: h * w,
        };
        match fused {
            true => self.fused(x, residual, relu, mode, dims),
            false => self.composite(x, residual, relu, mode),
        }
    }

    fn fused(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
        mode: Mode,
        dims: Dims,
    ) -> Result<Tensor> {
        let x = x.contiguous()?;
        let (mean, var) = match mode {
            Mode::Train => {
                let (mean, var) = batch_stats(&x, dims)?;
                self.update_running(&mean, &var, dims)?;
                (mean, var)
            }
            Mode::Eval => (to_f64(&self.running_mean)?, to_f64(&self.running_var)?),
        };
        let rstd = var.iter().map(|v| (1.0 / (v + self.eps).sqrt()) as f32);
        let op = BatchNormOp {
            dims,
            mean: mean.iter().map(|m| *m as f32).collect(),
            rstd: rstd.collect(),
            batch_stats: mode == Mode::Train,
            relu,
        };
        let affine = Tensor::cat(&[self.weight.as_tensor(), self.bias.as_tensor()], 0)?;
        match residual {
            Some(r) => x.apply_op3(&affine, &r.contiguous()?, op),
            None => x.apply_op2(&affine, op),
        }
    }

    /// The same function from candle's differentiable ops.
    fn composite(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
        mode: Mode,
    ) -> Result<Tensor> {
        let c = self.channels;
        let (mean, var) = match mode {
            Mode::Train => {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
                let count = x.elem_count() / c;
                let (m, v) = (to_f64(&mean.detach())?, to_f64(&var.detach())?);
                self.update_running(&m, &v, Dims::single(count, c))?;
                (mean, var)
            }
            Mode::Eval => (
                self.running_mean.as_tensor().reshape((1, c, 1, 1))?,
                self.running_var.as_tensor().reshape((1, c, 1, 1))?,
            ),
        };
        let normed = x
            .broadcast_sub(&mean)?
            .broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let mut y = normed
            .broadcast_mul(&self.weight.as_tensor().reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.bias.as_tensor().reshape((1, c, 1, 1))?)?;
        if let Some(r) = residual {
            y = (y + r)?;
        }
        if relu {
            y = y.relu()?;
        }
        Ok(y)
    }

    /// `running = (1 - momentum) running + momentum batch`, with the batch variance made
    /// unbiased (`* n / (n - 1)`, as PyTorch; left biased for a single value).
    fn update_running(&self, mean: &[f64], var: &[f64], dims: Dims) -> Result<()> {
        let n = (dims.batch * dims.spatial) as f64;
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = self.momentum;
        let blend = |var: &Var, batch: Vec<f64>| -> Result<()> {
            let old = to_f64(var)?;
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(o, b)| ((1.0 - m) * o + m * b) as f32)
                .collect();
            var.set(&Tensor::from_vec(new, self.channels, var.device())?)
        };
        blend(&self.running_mean, mean.to_vec())?;
        blend(&self.running_var, var.iter().map(|v| v * unbias).collect())
    }
}

impl Dims {
    /// `count` values per channel, as one "image" of that many pixels.
    fn single(count: usize, channels: usize) -> Self {
        Dims {
            batch: 1,
            channels,
            spatial: count,
        }
    }
}

/// Mean and biased variance per channel of a contiguous f32 CPU tensor.
fn batch_stats(x: &Tensor, dims: Dims) -> Result<(Vec<f64>, Vec<f64>)> {
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage else {
        candle_core::bail!("batch_norm: expected f32 CPU data");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("batch_norm: expected a contiguous tensor");
    };
    Ok(channel_stats(&data[start..end], dims))
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()
}
