//! The residual block and the resamplers shared by the SD VAE and UNet.
//!
//! Ports `ResnetBlock2D` (`time_embedding_norm="default"`, optional time embedding: the VAE
//! has none), `Downsample2D` and `Upsample2D` (both `use_conv=True`) from diffusers
//! `models/resnet.py`, `models/downsampling.py` and `models/upsampling.py`. Weight names:
//! `norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut`, and `conv` for the resamplers.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::layers::Linear;
use crate::unet::layers::{upsample_nearest_2x, Conv2d, GroupNorm};

/// diffusers `ResnetBlock2D`:
/// `out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb)))))) / s`.
#[derive(Debug, Clone)]
pub(crate) struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

/// Shape and norm settings of one [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResnetSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Width of the time embedding; `None` for the VAE (no `time_emb_proj`).
    pub temb_channels: Option<usize>,
    pub groups: usize,
    pub eps: f64,
    pub output_scale_factor: f64,
}

impl ResnetBlock2D {
    pub(crate) fn new(spec: ResnetSpec, vb: VarBuilder) -> Result<Self> {
        let (cin, cout) = (spec.in_channels, spec.out_channels);
        let time_emb_proj = match spec.temb_channels {
            Some(t) => Some(Linear::new(t, cout, vb.pp("time_emb_proj"))?),
            None => None,
        };
        let conv_shortcut = if cin != cout {
            Some(Conv2d::new(cin, cout, 1, 1, 0, vb.pp("conv_shortcut"))?)
        } else {
            None
        };
        Ok(Self {
            norm1: GroupNorm::new(spec.groups, cin, spec.eps, vb.pp("norm1"))?,
            conv1: Conv2d::new(cin, cout, 3, 1, 1, vb.pp("conv1"))?,
            time_emb_proj,
            norm2: GroupNorm::new(spec.groups, cout, spec.eps, vb.pp("norm2"))?,
            conv2: Conv2d::new(cout, cout, 3, 1, 1, vb.pp("conv2"))?,
            conv_shortcut,
            output_scale_factor: spec.output_scale_factor,
        })
    }

    /// `x [B, C_in, H, W]`, `temb_act [B, T]` = `silu(temb)` (computed once by the caller;
    /// ignored by a block without `time_emb_proj`) `-> [B, C_out, H, W]`.
    pub(crate) fn forward(&self, x: &Tensor, temb_act: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        if let (Some(proj), Some(temb)) = (&self.time_emb_proj, temb_act) {
            h = h.broadcast_add(&proj.forward(temb)?.unsqueeze(2)?.unsqueeze(3)?)?;
        }
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

/// diffusers `Downsample2D`: a stride-2 3x3 conv (`downsamplers.0.conv`); with padding 0 a
/// zero row and column are added at the bottom and right first (the VAE's layout).
#[derive(Debug, Clone)]
pub(crate) struct Downsample2D {
    conv: Conv2d,
    pad_bottom_right: bool,
}

impl Downsample2D {
    pub(crate) fn new(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(channels, channels, 3, 2, padding, vb.pp("conv"))?,
            pad_bottom_right: padding == 0,
        })
    }

    /// `[B, C, H, W] -> [B, C, H/2, W/2]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_bottom_right {
            let padded = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            self.conv.forward(&padded)
        } else {
            self.conv.forward(x)
        }
    }
}

/// diffusers `Upsample2D`: nearest x2 (or to an explicit size) then a 3x3 conv.
#[derive(Debug, Clone)]
pub(crate) struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    pub(crate) fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::new(channels, channels, 3, 1, 1, vb.pp("conv"))?,
        })
    }

    /// `[B, C, H, W] -> [B, C, 2H, 2W]`, or `[B, C, size.0, size.1]` when the skip
    /// connection it meets has an odd size (diffusers' `upsample_size`).
    pub(crate) fn forward(&self, x: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let up = match size {
            Some((h, w)) => x.upsample_nearest2d(h, w)?,
            None => upsample_nearest_2x(x)?,
        };
        self.conv.forward(&up)
    }
}
