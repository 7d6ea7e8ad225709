//! The UNet's levels: down blocks, the mid block and up blocks.
//!
//! Ports `DownBlock2D`/`AttnDownBlock2D`, `UNetMidBlock2D` and `UpBlock2D`/`AttnUpBlock2D`
//! from diffusers `src/diffusers/models/unets/unet_2d_blocks.py` (v0.42.1). A plain and an
//! attention block differ only in an attention layer after each resnet, so each pair is one
//! type here. Weight names: `resnets.{j}`, `attentions.{j}`, `downsamplers.0`, `upsamplers.0`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::attention::{AttentionSpec, SpatialAttention};
use super::resnet::{Downsample2D, ResnetBlock2D, ResnetSpec, Upsample2D};

/// Settings shared by every block of one model.
#[derive(Debug, Clone, Copy)]
pub struct BlockCommon {
    pub temb_channels: usize,
    pub groups: usize,
    pub eps: f64,
}

impl BlockCommon {
    fn resnet(&self, in_channels: usize, out_channels: usize, scale: f64) -> ResnetSpec {
        ResnetSpec {
            in_channels,
            out_channels,
            temb_channels: self.temb_channels,
            groups: self.groups,
            eps: self.eps,
            output_scale_factor: scale,
        }
    }

    fn attention(
        &self,
        channels: usize,
        head_dim: usize,
        groups: usize,
        scale: f64,
    ) -> AttentionSpec {
        AttentionSpec {
            channels,
            head_dim,
            groups,
            eps: self.eps,
            rescale_output_factor: scale,
        }
    }
}

/// One level of the encoder.
#[derive(Debug, Clone, Copy)]
pub struct DownBlockSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub layers: usize,
    /// `Some(head_dim)` for `AttnDownBlock2D`.
    pub attention_head_dim: Option<usize>,
    pub add_downsample: bool,
    pub downsample_padding: usize,
}

/// `DownBlock2D` / `AttnDownBlock2D`.
#[derive(Debug, Clone)]
pub struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<SpatialAttention>,
    downsampler: Option<Downsample2D>,
}

impl DownBlock {
    pub fn new(spec: &DownBlockSpec, common: &BlockCommon, vb: VarBuilder) -> Result<Self> {
        let mut resnets = Vec::with_capacity(spec.layers);
        let mut attentions = Vec::new();
        for j in 0..spec.layers {
            let cin = if j == 0 {
                spec.in_channels
            } else {
                spec.out_channels
            };
            let rs = common.resnet(cin, spec.out_channels, 1.0);
            resnets.push(ResnetBlock2D::new(&rs, vb.pp("resnets").pp(j))?);
            if let Some(head_dim) = spec.attention_head_dim {
                let a = common.attention(spec.out_channels, head_dim, common.groups, 1.0);
                attentions.push(SpatialAttention::new(&a, vb.pp("attentions").pp(j))?);
            }
        }
        let downsampler = if spec.add_downsample {
            let vb = vb.pp("downsamplers").pp(0);
            Some(Downsample2D::new(
                spec.out_channels,
                spec.downsample_padding,
                vb,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            downsampler,
        })
    }

    /// `x [B, C_in, H, W] -> ([B, C_out, H', W'], skips)`, where `H' = H/2` with a
    /// downsampler. `skips` are the outputs after each layer and after the downsampler.
    pub fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = x.clone();
        let mut skips = Vec::with_capacity(self.resnets.len() + 1);
        for (j, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(&h, temb_act)?;
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(&h)?;
            }
            skips.push(h.clone());
        }
        if let Some(down) = &self.downsampler {
            h = down.forward(&h)?;
            skips.push(h.clone());
        }
        Ok((h, skips))
    }
}

/// `UNetMidBlock2D` with one attention layer: `resnet -> [attention] -> resnet`.
#[derive(Debug, Clone)]
pub struct MidBlock {
    first: ResnetBlock2D,
    attention: Option<SpatialAttention>,
    second: ResnetBlock2D,
}

/// Settings of the [`MidBlock`].
#[derive(Debug, Clone, Copy)]
pub struct MidBlockSpec {
    pub channels: usize,
    /// `Some(head_dim)` when `add_attention`.
    pub attention_head_dim: Option<usize>,
    pub attention_groups: usize,
    pub output_scale_factor: f64,
}

impl MidBlock {
    pub fn new(spec: &MidBlockSpec, common: &BlockCommon, vb: VarBuilder) -> Result<Self> {
        let (c, scale) = (spec.channels, spec.output_scale_factor);
        let rs = common.resnet(c, c, scale);
        let attention = match spec.attention_head_dim {
            Some(head_dim) => {
                let a = common.attention(c, head_dim, spec.attention_groups, scale);
                Some(SpatialAttention::new(&a, vb.pp("attentions").pp(0))?)
            }
            None => None,
        };
        Ok(Self {
            first: ResnetBlock2D::new(&rs, vb.pp("resnets").pp(0))?,
            attention,
            second: ResnetBlock2D::new(&rs, vb.pp("resnets").pp(1))?,
        })
    }

    /// `[B, C, H, W] -> [B, C, H, W]`.
    pub fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<Tensor> {
        let mut h = self.first.forward(x, temb_act)?;
        if let Some(attention) = &self.attention {
            h = attention.forward(&h)?;
        }
        self.second.forward(&h, temb_act)
    }
}

/// One level of the decoder.
#[derive(Debug, Clone, Copy)]
pub struct UpBlockSpec {
    /// Channels of the deepest skip this block consumes (the level below's width).
    pub in_channels: usize,
    /// Channels coming from the previous up block (or the mid block).
    pub prev_output_channels: usize,
    pub out_channels: usize,
    /// `layers_per_block + 1`: one resnet per skip.
    pub layers: usize,
    /// `Some(head_dim)` for `AttnUpBlock2D`.
    pub attention_head_dim: Option<usize>,
    pub add_upsample: bool,
}

/// `UpBlock2D` / `AttnUpBlock2D`.
#[derive(Debug, Clone)]
pub struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<SpatialAttention>,
    upsampler: Option<Upsample2D>,
}

impl UpBlock {
    pub fn new(spec: &UpBlockSpec, common: &BlockCommon, vb: VarBuilder) -> Result<Self> {
        let mut resnets = Vec::with_capacity(spec.layers);
        let mut attentions = Vec::new();
        let cout = spec.out_channels;
        for j in 0..spec.layers {
            let skip = if j + 1 == spec.layers {
                spec.in_channels
            } else {
                cout
            };
            let from_below = if j == 0 {
                spec.prev_output_channels
            } else {
                cout
            };
            let rs = common.resnet(from_below + skip, cout, 1.0);
            resnets.push(ResnetBlock2D::new(&rs, vb.pp("resnets").pp(j))?);
            if let Some(head_dim) = spec.attention_head_dim {
                let a = common.attention(cout, head_dim, common.groups, 1.0);
                attentions.push(SpatialAttention::new(&a, vb.pp("attentions").pp(j))?);
            }
        }
        let upsampler = if spec.add_upsample {
            Some(Upsample2D::new(cout, vb.pp("upsamplers").pp(0))?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            upsampler,
        })
    }

    /// `x [B, C_prev, H, W]` and `skips` (consumed from the end, last one first; each
    /// `[B, C_skip, H, W]`) `-> [B, C_out, H', W']`, `H' = 2H` with an upsampler.
    pub fn forward(
        &self,
        x: &Tensor,
        skips: &mut Vec<Tensor>,
        temb_act: &Tensor,
    ) -> Result<Tensor> {
        let mut h = x.clone();
        for (j, resnet) in self.resnets.iter().enumerate() {
            let Some(skip) = skips.pop() else {
                candle_core::bail!("up block: ran out of skip connections (a bug)");
            };
            h = resnet.forward(&Tensor::cat(&[&h, &skip], 1)?, temb_act)?;
            if let Some(attention) = self.attentions.get(j) {
                h = attention.forward(&h)?;
            }
        }
        match &self.upsampler {
            Some(up) => up.forward(&h),
            None => Ok(h),
        }
    }
}
