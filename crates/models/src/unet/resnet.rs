//! The residual block and the resampling layers of the UNet.
//!
//! Ports `ResnetBlock2D` (with `time_embedding_norm="default"`, `pre_norm`, no dropout at
//! inference), `Downsample2D` (`use_conv=True`) and `Upsample2D` (`use_conv=True`, nearest x2)
//! from diffusers `src/diffusers/models/resnet.py`, `downsampling.py` and `upsampling.py`
//! (v0.42.1). Weight names: `norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut` and
//! `conv` for the resamplers.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::{Conv2d, GroupNorm, Linear};

/// Shape and norm settings of one [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy)]
pub struct ResnetSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub temb_channels: usize,
    pub groups: usize,
    pub eps: f64,
    /// The block's output is divided by this (`output_scale_factor`).
    pub output_scale_factor: f64,
}

/// diffusers `ResnetBlock2D`:
/// `out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb)))))) / scale`.
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    /// 1x1 conv when the channel count changes.
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub fn new(spec: &ResnetSpec, vb: VarBuilder) -> Result<Self> {
        let (cin, cout) = (spec.in_channels, spec.out_channels);
        let conv_shortcut = if cin != cout {
            Some(Conv2d::new(cin, cout, 1, 1, 0, vb.pp("conv_shortcut"))?)
        } else {
            None
        };
        Ok(Self {
            norm1: GroupNorm::new(spec.groups, cin, spec.eps, vb.pp("norm1"))?,
            conv1: Conv2d::new(cin, cout, 3, 1, 1, vb.pp("conv1"))?,
            time_emb_proj: Linear::new(spec.temb_channels, cout, vb.pp("time_emb_proj"))?,
            norm2: GroupNorm::new(spec.groups, cout, spec.eps, vb.pp("norm2"))?,
            conv2: Conv2d::new(cout, cout, 3, 1, 1, vb.pp("conv2"))?,
            conv_shortcut,
            output_scale_factor: spec.output_scale_factor,
        })
    }

    /// `x [B, C_in, H, W]`, `temb_act [B, T]` = `silu(temb)` (shared by all resnets, so
    /// computed once by the caller) `-> [B, C_out, H, W]`.
    pub fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        let t = self
            .time_emb_proj
            .forward(temb_act)?
            .unsqueeze(2)?
            .unsqueeze(3)?;
        let h = h.broadcast_add(&t)?;
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        let out = (shortcut + h)?;
        if self.output_scale_factor == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale_factor
        }
    }
}

/// diffusers `Downsample2D` with a stride-2 3x3 conv (`downsamplers.0.conv`).
#[derive(Debug, Clone)]
pub struct Downsample2D {
    conv: Conv2d,
    /// `downsample_padding = 0`: pad one zero row/column at the bottom/right first.
    pad_bottom_right: bool,
}

impl Downsample2D {
    pub fn new(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(channels, channels, 3, 2, padding, vb.pp("conv"))?,
            pad_bottom_right: padding == 0,
        })
    }

    /// `[B, C, H, W] -> [B, C, H/2, W/2]` (H, W even).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_bottom_right {
            let padded = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            self.conv.forward(&padded)
        } else {
            self.conv.forward(x)
        }
    }
}

/// diffusers `Upsample2D`: nearest x2 then a 3x3 conv (`upsamplers.0.conv`).
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(channels, channels, 3, 1, 1, vb.pp("conv"))?,
        })
    }

    /// `[B, C, H, W] -> [B, C, 2H, 2W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward_upsampled(x)
    }
}
