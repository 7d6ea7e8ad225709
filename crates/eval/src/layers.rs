//! The layers a ResNet is made of besides BatchNorm: convolution (always through
//! `semaug_kernels::conv2d`), a fully connected layer, global average pooling and the
//! parameter-free option-A shortcut.

use candle_core::{Result, Tensor};

use crate::init::ParamBuilder;
use crate::option_a::{Subsample, SubsampleOp};

/// A square-kernel convolution without bias (every conv here is followed by BatchNorm,
/// which has its own shift).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// Weight `[c_out, c_in, k, k]`, Kaiming-normal in fan-out mode.
    pub fn new(
        pb: &ParamBuilder,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let fan_out = c_out * kernel * kernel;
        let weight = pb.kaiming_normal("weight", (c_out, c_in, kernel, kernel), fan_out)?;
        Ok(Self {
            weight: weight.as_tensor().clone(),
            stride,
            padding,
        })
    }

    /// `[N, c_in, H, W]` -> `[N, c_out, H', W']`, `H' = (H + 2 padding - k) / stride + 1`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        semaug_kernels::conv2d(x, &self.weight, None, self.stride, self.padding)
    }
}

/// `y = x W^T + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// Weight `[out, in]` ~ `N(0, 1 / in)` (unit gain: the logits), bias 0.
    pub fn new(pb: &ParamBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        let std = (1.0 / inputs.max(1) as f64).sqrt() as f32;
        Ok(Self {
            weight: pb
                .normal("weight", (outputs, inputs), std)?
                .as_tensor()
                .clone(),
            bias: pb.constant("bias", outputs, 0.0)?.as_tensor().clone(),
        })
    }

    /// `[N, in]` -> `[N, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// He et al. (2016)'s option-A shortcut: `x[:, :, ::s, ::s]` with the new channels
/// zero-padded half before and half after (no parameters). On CPU it is a copy kernel;
/// elsewhere a fixed 1x1 stride-`s` convolution whose weight copies input channel `i`
/// to output channel `i + pad / 2` does the same.
#[derive(Debug, Clone)]
pub struct OptionAShortcut {
    selection: Tensor,
    c_in: usize,
    c_out: usize,
    stride: usize,
}

impl OptionAShortcut {
    pub fn new(pb: &ParamBuilder, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        if c_out < c_in || stride == 0 {
            candle_core::bail!(
                "option-A shortcut cannot map {c_in} to {c_out} channels at stride {stride}"
            );
        }
        let mut weight = vec![0f32; c_out * c_in];
        for i in 0..c_in {
            weight[(i + (c_out - c_in) / 2) * c_in + i] = 1.0;
        }
        let selection = Tensor::from_vec(weight, (c_out, c_in, 1, 1), pb.device())?;
        Ok(Self {
            selection,
            c_in,
            c_out,
            stride,
        })
    }

    /// `[N, c_in, H, W]` -> `[N, c_out, ceil(H / s), ceil(W / s)]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
            return semaug_kernels::conv2d(x, &self.selection, None, self.stride, 0);
        }
        let (batch, c_in, h, w) = x.dims4()?;
        if c_in != self.c_in {
            candle_core::bail!(
                "option-A shortcut: {c_in} input channels, expected {}",
                self.c_in
            );
        }
        let dims = Subsample {
            batch,
            c_in,
            c_out: self.c_out,
            offset: (self.c_out - self.c_in) / 2,
            stride: self.stride,
            h,
            w,
        };
        x.contiguous()?.apply_op1(SubsampleOp(dims))
    }
}

/// Global average pooling: `[N, C, H, W]` -> `[N, C]`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.mean((2, 3))
}
