//! The Stable Diffusion VAE: diffusers `AutoencoderKL`, encode to the latent posterior and
//! decode back to pixels.
//!
//! Ports `AutoencoderKL` (`models/autoencoders/autoencoder_kl.py`), its `Encoder` /
//! `Decoder` (`models/autoencoders/vae.py`, with `DiagonalGaussianDistribution`), the
//! `DownEncoderBlock2D` / `UpDecoderBlock2D` / `UNetMidBlock2D` blocks
//! (`models/unets/unet_2d_blocks.py`) and the mid-block `Attention` as `AttnProcessor2_0`
//! runs it (`models/attention_processor.py`). Weight names are diffusers' (`encoder.`,
//! `decoder.`, `quant_conv`, `post_quant_conv`); attention weights saved by old diffusers
//! (`query`, `key`, `value`, `proj_attn`) are renamed on load as diffusers does.
//!
//! Latent conventions: SD 1.x `latent = mean * scaling_factor`; SD3 (`shift_factor`)
//! `latent = (mean - shift) * scaling_factor`; decoding inverts that. The scaled API
//! ([`AutoencoderKl::encode_scaled`], [`AutoencoderKl::decode_scaled`]) takes and gives f32
//! whatever the weights' dtype, and scales in f32; `encode` / `decode` compute in the
//! weights' dtype.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::error::SdError;
use super::layers::{attention, merge_heads, split_heads, Linear};
use super::resnet::{Downsample2D, ResnetBlock2D, ResnetSpec, Upsample2D};
use super::weights::{build_checked, first_existing, read_json, read_safetensors};
use crate::unet::io::modern_attention_name;
use crate::unet::layers::{Conv2d, GroupNorm};

/// The config file of a diffusers model folder.
pub const VAE_CONFIG_FILE: &str = "config.json";
/// The weights file names tried, in order.
pub const VAE_WEIGHTS_FILES: [&str; 2] = [
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
];

/// The VAE's norms use this epsilon (diffusers hard-codes it in `Encoder` / `Decoder`).
const VAE_EPS: f64 = 1e-6;

fn default_in_out() -> usize {
    3
}
fn default_latent_channels() -> usize {
    4
}
fn default_layers() -> usize {
    1
}
fn default_groups() -> usize {
    32
}
fn default_scaling() -> f64 {
    0.18215
}
fn default_true() -> bool {
    true
}
fn default_act() -> String {
    "silu".into()
}

/// diffusers `AutoencoderKL`'s config (the fields the model uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "default_in_out")]
    pub in_channels: usize,
    #[serde(default = "default_in_out")]
    pub out_channels: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "default_layers")]
    pub layers_per_block: usize,
    #[serde(default = "default_act")]
    pub act_fn: String,
    #[serde(default = "default_latent_channels")]
    pub latent_channels: usize,
    #[serde(default = "default_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "default_scaling")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "default_true")]
    pub use_quant_conv: bool,
    #[serde(default = "default_true")]
    pub use_post_quant_conv: bool,
    #[serde(default = "default_true")]
    pub mid_block_add_attention: bool,
}

impl VaeConfig {
    fn check(&self, origin: &str) -> Result<(), SdError> {
        let bad =
            |field, detail: String| SdError::unsupported(origin, "AutoencoderKL", field, detail);
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(bad("block_out_channels", "must not be empty".into()));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(bad(
                "down_block_types",
                "and up_block_types need one entry per block_out_channels entry".into(),
            ));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(bad(
                "down_block_types",
                format!("has {t:?}; only DownEncoderBlock2D is supported"),
            ));
        }
        if let Some(t) = self
            .up_block_types
            .iter()
            .find(|t| *t != "UpDecoderBlock2D")
        {
            return Err(bad(
                "up_block_types",
                format!("has {t:?}; only UpDecoderBlock2D is supported"),
            ));
        }
        if self.act_fn != "silu" {
            return Err(bad(
                "act_fn",
                format!("= {:?}; only silu is supported", self.act_fn),
            ));
        }
        let g = self.norm_num_groups;
        if g == 0 || self.block_out_channels.iter().any(|c| c % g != 0) {
            return Err(bad(
                "norm_num_groups",
                format!("= {g} must divide every block_out_channels entry"),
            ));
        }
        Ok(())
    }

    /// Pixels per latent pixel along each axis: `2^(blocks - 1)` (8 for real SD VAEs).
    pub fn downscale_factor(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

/// The encoder's diagonal Gaussian posterior over latents (`DiagonalGaussianDistribution`).
#[derive(Debug, Clone)]
pub struct LatentPosterior {
    /// `[B, latent_channels, h, w]`, unscaled.
    pub mean: Tensor,
    /// `[B, latent_channels, h, w]`, clamped to [-30, 20] as diffusers does.
    pub logvar: Tensor,
}

/// The VAE mid-block attention: one spatial self-attention with group norm and a residual.
#[derive(Debug, Clone)]
struct SpatialSelfAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl SpatialSelfAttention {
    fn new(channels: usize, groups: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            group_norm: GroupNorm::new(groups, channels, VAE_EPS, vb.pp("group_norm"))?,
            to_q: Linear::new(channels, channels, vb.pp("to_q"))?,
            to_k: Linear::new(channels, channels, vb.pp("to_k"))?,
            to_v: Linear::new(channels, channels, vb.pp("to_v"))?,
            to_out: Linear::new(channels, channels, vb.pp("to_out.0"))?,
            // `attention_head_dim = block_out_channels[-1]`: a single head.
            heads: 1,
        })
    }

    /// `[B, C, H, W] -> [B, C, H, W]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = self
            .group_norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = split_heads(&self.to_q.forward(&tokens)?, self.heads)?;
        let k = split_heads(&self.to_k.forward(&tokens)?, self.heads)?;
        let v = split_heads(&self.to_v.forward(&tokens)?, self.heads)?;
        let scale = 1.0 / ((c / self.heads) as f64).sqrt();
        let attended = merge_heads(&attention(&q, &k, &v, scale, None)?)?;
        let out = self
            .to_out
            .forward(&attended)?
            .transpose(1, 2)?
            .reshape((b, c, h, w))?;
        out + x
    }
}

/// `UNetMidBlock2D` without time embedding: resnet, (attention), resnet.
#[derive(Debug, Clone)]
struct MidBlock {
    resnet_in: ResnetBlock2D,
    attention: Option<SpatialSelfAttention>,
    resnet_out: ResnetBlock2D,
}

impl MidBlock {
    fn new(channels: usize, c: &VaeConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let spec = ResnetSpec {
            in_channels: channels,
            out_channels: channels,
            temb_channels: None,
            groups: c.norm_num_groups,
            eps: VAE_EPS,
            output_scale_factor: 1.0,
        };
        let attention = if c.mid_block_add_attention {
            Some(SpatialSelfAttention::new(
                channels,
                c.norm_num_groups,
                vb.pp("attentions.0"),
            )?)
        } else {
            None
        };
        Ok(Self {
            resnet_in: ResnetBlock2D::new(spec, vb.pp("resnets.0"))?,
            attention,
            resnet_out: ResnetBlock2D::new(spec, vb.pp("resnets.1"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.resnet_in.forward(x, None)?;
        if let Some(a) = &self.attention {
            h = a.forward(&h)?;
        }
        self.resnet_out.forward(&h, None)
    }
}

fn resnet_spec(cin: usize, cout: usize, c: &VaeConfig) -> ResnetSpec {
    ResnetSpec {
        in_channels: cin,
        out_channels: cout,
        temb_channels: None,
        groups: c.norm_num_groups,
        eps: VAE_EPS,
        output_scale_factor: 1.0,
    }
}

/// A down or up block: resnets, then an optional resampler.
#[derive(Debug, Clone)]
struct Block {
    resnets: Vec<ResnetBlock2D>,
    downsampler: Option<Downsample2D>,
    upsampler: Option<Upsample2D>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for r in &self.resnets {
            h = r.forward(&h, None)?;
        }
        if let Some(d) = &self.downsampler {
            h = d.forward(&h)?;
        }
        if let Some(u) = &self.upsampler {
            h = u.forward(&h, None)?;
        }
        Ok(h)
    }
}

/// The conv-in, blocks, mid block and norm/act/conv-out shared by encoder and decoder.
#[derive(Debug, Clone)]
struct Coder {
    conv_in: Conv2d,
    blocks: Vec<Block>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    /// The decoder runs its mid block before the blocks, the encoder after.
    mid_first: bool,
}

impl Coder {
    fn encoder(c: &VaeConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let ch = &c.block_out_channels;
        let last = ch.len() - 1;
        let mut blocks = Vec::with_capacity(ch.len());
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            let resnets = (0..c.layers_per_block)
                .map(|j| {
                    let from = if j == 0 { cin } else { cout };
                    ResnetBlock2D::new(resnet_spec(from, cout, c), bvb.pp("resnets").pp(j))
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let downsampler = if i < last {
                Some(Downsample2D::new(cout, 0, bvb.pp("downsamplers.0"))?)
            } else {
                None
            };
            blocks.push(Block {
                resnets,
                downsampler,
                upsampler: None,
            });
            cin = cout;
        }
        Ok(Self {
            conv_in: Conv2d::new(c.in_channels, ch[0], 3, 1, 1, vb.pp("conv_in"))?,
            blocks,
            mid_block: MidBlock::new(ch[last], c, vb.pp("mid_block"))?,
            conv_norm_out: GroupNorm::new(
                c.norm_num_groups,
                ch[last],
                VAE_EPS,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: Conv2d::new(ch[last], 2 * c.latent_channels, 3, 1, 1, vb.pp("conv_out"))?,
            mid_first: false,
        })
    }

    fn decoder(c: &VaeConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let reversed: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let last = reversed.len() - 1;
        let mut blocks = Vec::with_capacity(reversed.len());
        let mut cin = reversed[0];
        for (i, &cout) in reversed.iter().enumerate() {
            let bvb = vb.pp("up_blocks").pp(i);
            let resnets = (0..c.layers_per_block + 1)
                .map(|j| {
                    let from = if j == 0 { cin } else { cout };
                    ResnetBlock2D::new(resnet_spec(from, cout, c), bvb.pp("resnets").pp(j))
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let upsampler = if i < last {
                Some(Upsample2D::new(cout, bvb.pp("upsamplers.0"))?)
            } else {
                None
            };
            blocks.push(Block {
                resnets,
                downsampler: None,
                upsampler,
            });
            cin = cout;
        }
        Ok(Self {
            conv_in: Conv2d::new(c.latent_channels, reversed[0], 3, 1, 1, vb.pp("conv_in"))?,
            blocks,
            mid_block: MidBlock::new(reversed[0], c, vb.pp("mid_block"))?,
            conv_norm_out: GroupNorm::new(
                c.norm_num_groups,
                reversed[last],
                VAE_EPS,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: Conv2d::new(reversed[last], c.out_channels, 3, 1, 1, vb.pp("conv_out"))?,
            mid_first: true,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        if self.mid_first {
            h = self.mid_block.forward(&h)?;
        }
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        if !self.mid_first {
            h = self.mid_block.forward(&h)?;
        }
        self.conv_out.forward(&self.conv_norm_out.forward_silu(&h)?)
    }
}

/// diffusers `AutoencoderKL`.
#[derive(Debug, Clone)]
pub struct AutoencoderKl {
    config: VaeConfig,
    encoder: Coder,
    decoder: Coder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    /// The weights' dtype, in which the network computes (norms and softmax in f32).
    dtype: DType,
}

impl AutoencoderKl {
    /// Loads a diffusers `AutoencoderKL` folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, e.g. SD's `vae/`) onto `device`, as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, SdError> {
        let config_path = dir.join(VAE_CONFIG_FILE);
        let config: VaeConfig = read_json(&config_path, "AutoencoderKL")?;
        config.check(&config_path.display().to_string())?;
        let path = first_existing(dir, &VAE_WEIGHTS_FILES);
        let tensors = read_safetensors(&path, "the VAE weights")?;
        Self::from_tensors(&config, tensors, device, dtype, &path.display().to_string())
    }

    /// A VAE from checkpoint tensors (diffusers names), weights as `dtype` on `device`.
    pub fn from_tensors(
        config: &VaeConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, SdError> {
        config.check(origin)?;
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| (modern_attention_name(&name), t))
            .collect();
        build_checked(tensors, device, dtype, origin, &[], |vb| {
            let latent2 = 2 * config.latent_channels;
            let l = config.latent_channels;
            Ok(Self {
                config: config.clone(),
                encoder: Coder::encoder(config, vb.pp("encoder"))?,
                decoder: Coder::decoder(config, vb.pp("decoder"))?,
                quant_conv: if config.use_quant_conv {
                    Some(Conv2d::new(latent2, latent2, 1, 1, 0, vb.pp("quant_conv"))?)
                } else {
                    None
                },
                post_quant_conv: if config.use_post_quant_conv {
                    Some(Conv2d::new(l, l, 1, 1, 0, vb.pp("post_quant_conv"))?)
                } else {
                    None
                },
                dtype: vb.dtype(),
            })
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// The weights' dtype: `encode` and `decode` cast their input to it and answer in it.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `image [B, C, H, W]` in [-1, 1] (H, W multiples of the downscale factor) -> the
    /// latent posterior `[B, latent_channels, H/f, W/f]`.
    pub fn encode(&self, image: &Tensor) -> Result<LatentPosterior, SdError> {
        let (_, c, h, w) = image.dims4().map_err(|_| {
            SdError::input(
                "image",
                format!("expected [B, C, H, W], got {:?}", image.dims()),
            )
        })?;
        let f = self.config.downscale_factor();
        if c != self.config.in_channels || h % f != 0 || w % f != 0 || h == 0 || w == 0 {
            return Err(SdError::input(
                "image",
                format!(
                    "shape {:?}: needs {} channels and H, W positive multiples of {f}",
                    image.dims(),
                    self.config.in_channels
                ),
            ));
        }
        let mut moments = self.encoder.forward(&image.to_dtype(self.dtype)?)?;
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        let l = self.config.latent_channels;
        Ok(LatentPosterior {
            mean: moments.narrow(1, 0, l)?,
            logvar: moments.narrow(1, l, l)?.clamp(-30f32, 20f32)?,
        })
    }

    /// `latent [B, latent_channels, h, w]` (unscaled) -> the decoder output
    /// `[B, out_channels, h*f, w*f]`, roughly in [-1, 1], not clamped.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor, SdError> {
        let (_, c, _, _) = latent.dims4().map_err(|_| {
            SdError::input(
                "latent",
                format!("expected [B, C, h, w], got {:?}", latent.dims()),
            )
        })?;
        if c != self.config.latent_channels {
            return Err(SdError::input(
                "latent",
                format!(
                    "has {c} channels, the VAE needs {}",
                    self.config.latent_channels
                ),
            ));
        }
        let latent = latent.to_dtype(self.dtype)?;
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(&latent)?,
            None => latent,
        };
        Ok(self.decoder.forward(&z)?)
    }

    /// The diffusion model's latent of `image`: the posterior mean, shifted and scaled
    /// (`(mean - shift_factor) * scaling_factor`; SD 1.x: `mean * 0.18215`), in f32.
    pub fn encode_scaled(&self, image: &Tensor) -> Result<Tensor, SdError> {
        let mean = self.encode(image)?.mean.to_dtype(DType::F32)?;
        self.scale_latent(&mean)
    }

    /// `(mean - shift_factor) * scaling_factor`.
    pub fn scale_latent(&self, mean: &Tensor) -> Result<Tensor, SdError> {
        let shifted = match self.config.shift_factor {
            Some(s) => (mean - s)?,
            None => mean.clone(),
        };
        Ok((shifted * self.config.scaling_factor)?)
    }

    /// Decodes a diffusion-model latent: `decode(latent / scaling_factor + shift_factor)`,
    /// unscaled in f32; the pixels come back as f32.
    pub fn decode_scaled(&self, latent: &Tensor) -> Result<Tensor, SdError> {
        // A true division, as PyTorch's `latent / scaling_factor`.
        let scale = Tensor::new(self.config.scaling_factor as f32, latent.device())?;
        let unscaled = latent.to_dtype(DType::F32)?.broadcast_div(&scale)?;
        let unscaled = match self.config.shift_factor {
            Some(s) => (unscaled + s)?,
            None => unscaled,
        };
        Ok(self.decode(&unscaled)?.to_dtype(DType::F32)?)
    }
}

/// A decoder output to [0, 1]: `(raw / 2 + 0.5).clamp(0, 1)` (diffusers' postprocessing).
pub fn to_unit_range(raw: &Tensor) -> Result<Tensor, SdError> {
    Ok(((raw / 2.0)? + 0.5)?.clamp(0f32, 1f32)?)
}

#[cfg(test)]
mod tests {
    use super::modern_attention_name;

    #[test]
    fn old_attention_names_are_renamed() {
        assert_eq!(
            modern_attention_name("encoder.mid_block.attentions.0.proj_attn.weight"),
            "encoder.mid_block.attentions.0.to_out.0.weight"
        );
        assert_eq!(
            modern_attention_name("decoder.mid_block.attentions.0.query.bias"),
            "decoder.mid_block.attentions.0.to_q.bias"
        );
        assert_eq!(
            modern_attention_name("decoder.mid_block.attentions.0.to_k.bias"),
            "decoder.mid_block.attentions.0.to_k.bias"
        );
    }
}
