//! The primitive layers of the UNet: convolution, group norm (+ SiLU), linear, embedding and
//! nearest-neighbour upsampling.
//!
//! **Every** convolution of the model goes through [`Conv2d`] and **every** group norm (with or
//! without the SiLU that follows it) through [`group_norm_act`]. They are the hot spots of CPU
//! training and run on the gemm-based conv2d and fused GroupNorm+SiLU kernels of
//! `semaug-kernels`, which have their own backward passes.
//!
//! Linear layers run one product per sample, so a sample's output is bitwise independent of
//! the batch it is in (see [`Linear::forward`]).
//!
//! Everything is built from candle ops that have a backward pass (candle's fused `layer_norm`,
//! `softmax_last_dim`, `rms_norm` and `sdpa` have none and are never used in this model).
//!
//! Weights are requested with PyTorch's default-initialisation hints (see [`Init`] use below)
//! so that a model built from a seeded `VarMap` starts where a PyTorch model would:
//! `kaiming_uniform_(a = sqrt 5)` for conv/linear weights, which is `U(-1/sqrt(fan_in),
//! 1/sqrt(fan_in))`, the same bound for biases, `N(0, 1)` for embeddings, ones/zeros for norms.
//!
//! The kernels take f32. Half-precision weights (pretrained models loaded as f16 / bf16)
//! run convolutions and linear layers on candle's own ops in their dtype (except bf16
//! convolutions on the CPU, which candle lacks: they run widened to f32), and group norms
//! in f32 (statistics of half values lose too much), cast back to the input's dtype.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// PyTorch's default bound for conv/linear weights and biases: `1 / sqrt(fan_in)`.
fn fan_in_uniform(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A 2-D convolution with bias (`torch.nn.Conv2d`, weights `weight [out, in, k, k]`, `bias [out]`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let init = fan_in_uniform(in_channels * kernel * kernel);
        let weight =
            vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
        let bias = vb.get_with_hints(out_channels, "bias", init)?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// `[B, C_in, H, W] -> [B, C_out, (H + 2p - k) / s + 1, (W + 2p - k) / s + 1]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::BF16 && x.device().is_cpu() {
            // candle's CPU conv2d has no bf16 product: widen to f32 as its bf16 matmul does.
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            let (w, b) = (f32(&self.weight)?, f32(&self.bias)?);
            return semaug_kernels::conv2d(&f32(x)?, &w, Some(&b), self.stride, self.padding)?
                .to_dtype(DType::BF16);
        }
        if x.dtype() != DType::F32 {
            let c_out = self.bias.dim(0)?;
            return x
                .conv2d(&self.weight, self.padding, self.stride, 1, 1)?
                .broadcast_add(&self.bias.reshape((1, c_out, 1, 1))?);
        }
        semaug_kernels::conv2d(x, &self.weight, Some(&self.bias), self.stride, self.padding)
    }

    /// This (3x3, stride 1, padding 1) conv applied to `x` upsampled 2x by nearest
    /// neighbour, `[B, C, H, W] -> [B, C_out, 2H, 2W]`, as one folded kernel that never
    /// builds the upsampled tensor (diffusers `Upsample2D`).
    pub fn forward_upsampled(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F32 {
            return self.forward(&upsample_nearest_2x(x)?);
        }
        semaug_kernels::upsample2x_conv3x3(x, &self.weight, Some(&self.bias))
    }
}

/// `torch.nn.GroupNorm(groups, channels, eps, affine=True)`.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
            eps,
        })
    }

    /// `[B, C, H, W] -> [B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        group_norm_act(x, &self.weight, &self.bias, self.groups, self.eps, false)
    }

    /// `silu(group_norm(x))`, `[B, C, H, W] -> [B, C, H, W]`.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        group_norm_act(x, &self.weight, &self.bias, self.groups, self.eps, true)
    }
}

/// Group norm over `[B, C, H, W]` (statistics per sample and group, biased variance, as
/// PyTorch), affine per channel, optionally followed by SiLU: one fused kernel with its own
/// backward. A half-precision `x` is normalised in f32 and the result cast back.
pub fn group_norm_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        return semaug_kernels::group_norm(
            &f32(x)?,
            groups,
            &f32(weight)?,
            &f32(bias)?,
            eps,
            silu,
        )?
        .to_dtype(x.dtype());
    }
    semaug_kernels::group_norm(x, groups, weight, bias, eps, silu)
}

/// `torch.nn.Linear(in, out)` with bias: weight `[out, in]`, bias `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        let init = fan_in_uniform(in_features);
        Ok(Self {
            weight: vb.get_with_hints((out_features, in_features), "weight", init)?,
            bias: vb.get_with_hints(out_features, "bias", init)?,
        })
    }

    /// `[B, in] -> [B, out]` or `[B, N, in] -> [B, N, out]`.
    ///
    /// Computed as one `[N, in] x [in, out]` product per sample (`semaug_kernels::linear`),
    /// so a sample's output does not depend on its batch: a single gemm over all `B * N`
    /// rows picks its kernel (and so its summation order) by row count, which changes the
    /// last bits with the batch size.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F32 {
            // Half precision: one product over all rows (batch invariance is an f32 promise).
            let Some((&in_features, lead)) = x.dims().split_last() else {
                candle_core::bail!("linear: a scalar input has no feature axis")
            };
            let rows: usize = lead.iter().product();
            let mut out_dims = lead.to_vec();
            out_dims.push(self.weight.dim(0)?);
            return x
                .reshape((rows, in_features))?
                .matmul(&self.weight.t()?)?
                .broadcast_add(&self.bias)?
                .reshape(out_dims);
        }
        semaug_kernels::linear(x, &self.weight, Some(&self.bias))
    }
}

/// `torch.nn.Embedding(rows, dim)`: weight `[rows, dim]`, initialised `N(0, 1)`.
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    pub fn new(rows: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Ok(Self {
            weight: vb.get_with_hints((rows, dim), "weight", init)?,
        })
    }

    /// The table, `[rows, dim]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `[B]` integer ids (u8, u32 or i64) `-> [B, dim]`. Ids must be in range.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.weight.index_select(ids, 0)
    }
}

/// Nearest-neighbour upsampling by 2 (`F.interpolate(scale_factor=2, mode="nearest")`),
/// `[B, C, H, W] -> [B, C, 2H, 2W]`.
pub fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(2 * h, 2 * w)
}
