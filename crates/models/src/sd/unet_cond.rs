//! The SD denoiser: diffusers `UNet2DConditionModel`, epsilon (or v) from a noisy latent, a
//! discrete timestep and text embeddings.
//!
//! Ports `UNet2DConditionModel.__init__` / `forward` (`models/unets/unet_2d_condition.py`)
//! for the SD 1.x / 2.x options, with `DownBlock2D`, `CrossAttnDownBlock2D`,
//! `UNetMidBlock2DCrossAttn`, `CrossAttnUpBlock2D` and `UpBlock2D`
//! (`models/unets/unet_2d_blocks.py`), and the `Timesteps` / `TimestepEmbedding` time
//! conditioning (`models/embeddings.py`). Note the SD naming quirk kept from diffusers: with
//! `num_attention_heads` unset, `attention_head_dim` is the number of **heads**.
//! Any config outside these options is refused with a typed error naming the field.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;

use super::error::SdError;
use super::layers::Linear;
use super::resnet::{Downsample2D, ResnetBlock2D, ResnetSpec, Upsample2D};
use super::transformer::{Transformer2D, TransformerSpec};
use super::weights::{build_checked, first_existing, read_json, read_safetensors};
use crate::unet::layers::{Conv2d, GroupNorm};

/// The config file of a diffusers model folder.
pub const UNET_CONFIG_FILE: &str = "config.json";
/// The weights file names tried, in order.
pub const UNET_WEIGHTS_FILES: [&str; 2] = [
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
];

/// A config entry that is one value for every block or one value per block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    /// The value for each of `n` blocks.
    fn expand(&self, n: usize, field: &'static str, origin: &str) -> Result<Vec<usize>, SdError> {
        match self {
            Self::One(v) => Ok(vec![*v; n]),
            Self::Each(v) if v.len() == n => Ok(v.clone()),
            Self::Each(v) => Err(SdError::unsupported(
                origin,
                "UNet2DConditionModel",
                field,
                format!("has {} entries for {n} blocks", v.len()),
            )),
        }
    }
}

fn d_channels() -> usize {
    4
}
fn d_true() -> bool {
    true
}
fn d_one() -> f64 {
    1.0
}
fn d_groups() -> usize {
    32
}
fn d_eps() -> f64 {
    1e-5
}
fn d_cross() -> PerBlock {
    PerBlock::One(1280)
}
fn d_heads() -> PerBlock {
    PerBlock::One(8)
}
fn d_kernel() -> usize {
    3
}
fn d_mid() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}
fn d_silu() -> String {
    "silu".into()
}

/// diffusers `UNet2DConditionModel`'s config (the fields the SD 1.x / 2.x model uses; the
/// others must keep their defaults, see [`Self::unsupported_fields`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UNet2DConditionConfig {
    #[serde(default = "d_channels")]
    pub in_channels: usize,
    #[serde(default = "d_channels")]
    pub out_channels: usize,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    #[serde(default = "d_mid")]
    pub mid_block_type: Option<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    #[serde(default = "d_one")]
    pub downsample_padding: f64,
    #[serde(default = "d_one")]
    pub mid_block_scale_factor: f64,
    #[serde(default = "d_silu")]
    pub act_fn: String,
    #[serde(default = "d_groups")]
    pub norm_num_groups: usize,
    #[serde(default = "d_eps")]
    pub norm_eps: f64,
    #[serde(default = "d_cross")]
    pub cross_attention_dim: PerBlock,
    #[serde(default)]
    pub transformer_layers_per_block: Option<PerBlock>,
    #[serde(default = "d_heads")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    #[serde(default = "d_kernel")]
    pub conv_in_kernel: usize,
    #[serde(default = "d_kernel")]
    pub conv_out_kernel: usize,
    #[serde(default = "d_one")]
    pub resnet_out_scale_factor: f64,
    /// Every other key of config.json, checked against its default.
    #[serde(flatten)]
    pub other: HashMap<String, Value>,
}

/// Keys whose value must be the default: `null`, `false`, or the named string.
const MUST_BE_DEFAULT: [(&str, &str); 18] = [
    // diffusers itself refuses `num_attention_heads` for this class (a naming issue).
    ("num_attention_heads", "null"),
    ("mid_block_only_cross_attention", "null"),
    ("class_embed_type", "null"),
    ("num_class_embeds", "null"),
    ("addition_embed_type", "null"),
    ("encoder_hid_dim", "null"),
    ("encoder_hid_dim_type", "null"),
    ("time_cond_proj_dim", "null"),
    ("timestep_post_act", "null"),
    ("time_embedding_act_fn", "null"),
    ("cross_attention_norm", "null"),
    ("reverse_transformer_layers_per_block", "null"),
    ("dual_cross_attention", "false"),
    ("only_cross_attention", "false"),
    ("resnet_skip_time_act", "false"),
    ("time_embedding_type", "positional"),
    ("resnet_time_scale_shift", "default"),
    ("attention_type", "default"),
];

impl UNet2DConditionConfig {
    /// Keys set to something this port does not implement, with their values.
    pub fn unsupported_fields(&self) -> Vec<(&'static str, String)> {
        let is_false = |v: &Value| v.is_null() || v == &Value::Bool(false);
        MUST_BE_DEFAULT
            .iter()
            .filter_map(|&(key, default)| {
                let v = self.other.get(key)?;
                let ok = match default {
                    "null" => v.is_null(),
                    // A per-block list of `false` is the default too.
                    "false" => is_false(v) || v.as_array().is_some_and(|a| a.iter().all(is_false)),
                    name => v.as_str() == Some(name),
                };
                (!ok).then(|| (key, v.to_string()))
            })
            .collect()
    }

    fn check(&self, origin: &str) -> Result<BlockPlan, SdError> {
        let bad = |field, detail: String| {
            SdError::unsupported(origin, "UNet2DConditionModel", field, detail)
        };
        if let Some((key, value)) = self.unsupported_fields().into_iter().next() {
            return Err(bad(key, format!("= {value} is not supported")));
        }
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(bad(
                "block_out_channels",
                "needs one down and one up block type per entry".into(),
            ));
        }
        if self.act_fn != "silu" {
            return Err(bad("act_fn", format!("= {:?}; only silu", self.act_fn)));
        }
        if self.mid_block_type.as_deref() != Some("UNetMidBlock2DCrossAttn") {
            return Err(bad(
                "mid_block_type",
                format!("= {:?}; only UNetMidBlock2DCrossAttn", self.mid_block_type),
            ));
        }
        if self.conv_in_kernel % 2 == 0 || self.conv_out_kernel % 2 == 0 {
            return Err(bad(
                "conv_in_kernel",
                "and conv_out_kernel must be odd".into(),
            ));
        }
        let down_cross = self
            .down_block_types
            .iter()
            .map(|t| match t.as_str() {
                "CrossAttnDownBlock2D" => Ok(true),
                "DownBlock2D" => Ok(false),
                other => Err(bad(
                    "down_block_types",
                    format!("has unsupported {other:?}"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let up_cross = self
            .up_block_types
            .iter()
            .map(|t| match t.as_str() {
                "CrossAttnUpBlock2D" => Ok(true),
                "UpBlock2D" => Ok(false),
                other => Err(bad("up_block_types", format!("has unsupported {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The SD quirk: without num_attention_heads, attention_head_dim counts heads.
        let heads = self
            .attention_head_dim
            .expand(n, "attention_head_dim", origin)?;
        let cross = self
            .cross_attention_dim
            .expand(n, "cross_attention_dim", origin)?;
        let layers = self
            .transformer_layers_per_block
            .clone()
            .unwrap_or(PerBlock::One(1))
            .expand(n, "transformer_layers_per_block", origin)?;
        let g = self.norm_num_groups;
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if g == 0 || c % g != 0 {
                return Err(bad("norm_num_groups", format!("= {g} must divide {c}")));
            }
            if heads[i] == 0 || c % heads[i] != 0 {
                return Err(bad(
                    "attention_head_dim",
                    format!("{} heads do not split {c} channels", heads[i]),
                ));
            }
        }
        Ok(BlockPlan {
            down_cross,
            up_cross,
            heads,
            cross,
            layers,
        })
    }

    /// Width of the time embedding (`time_embedding_dim`, default `4 * block_out_channels[0]`).
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim
            .unwrap_or(4 * self.block_out_channels[0])
    }
}

/// Per-block settings derived from the config.
#[derive(Debug, Clone)]
struct BlockPlan {
    down_cross: Vec<bool>,
    up_cross: Vec<bool>,
    heads: Vec<usize>,
    cross: Vec<usize>,
    layers: Vec<usize>,
}

/// diffusers `Timesteps`: sinusoidal features in f32, in PyTorch's order of operations.
#[derive(Debug, Clone)]
pub(crate) struct TimeProj {
    /// `[1, dim / 2]`.
    freqs: Tensor,
    flip_sin_to_cos: bool,
}

impl TimeProj {
    pub(crate) fn new(
        dim: usize,
        flip_sin_to_cos: bool,
        shift: f64,
        device: &Device,
    ) -> Result<Self, SdError> {
        let half = dim / 2;
        // (-ln(10000) [f32] * arange(half) [f32]) / (half - shift) [f32], then exp.
        let scale = -(10000f64.ln() as f32);
        let denom = (half as f64 - shift) as f32;
        let freqs: Vec<f32> = (0..half)
            .map(|i| ((scale * i as f32) / denom).exp())
            .collect();
        Ok(Self {
            freqs: Tensor::from_vec(freqs, (1, half), device)?,
            flip_sin_to_cos,
        })
    }

    /// `t [B]` -> `[B, dim]`.
    pub(crate) fn forward(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        let args = t
            .to_dtype(DType::F32)?
            .unsqueeze(1)?
            .broadcast_mul(&self.freqs)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        if self.flip_sin_to_cos {
            Tensor::cat(&[&cos, &sin], D::Minus1)
        } else {
            Tensor::cat(&[&sin, &cos], D::Minus1)
        }
    }
}

/// A down block: resnets (each followed by a transformer in a cross-attention block), then
/// an optional downsampler. Returns the output and the skip connections it adds.
#[derive(Debug, Clone)]
struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    downsampler: Option<Downsample2D>,
}

impl DownBlock {
    fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
        skips: &mut Vec<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            h = resnet.forward(&h, Some(temb))?;
            if let Some(attn) = self.attentions.get(i) {
                h = attn.forward(&h, context)?;
            }
            skips.push(h.clone());
        }
        if let Some(d) = &self.downsampler {
            h = d.forward(&h)?;
            skips.push(h.clone());
        }
        Ok(h)
    }
}

/// An up block: for each resnet, concatenate the last skip, resnet (+ transformer); then an
/// optional upsampler to the size of the next skip.
#[derive(Debug, Clone)]
struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    upsampler: Option<Upsample2D>,
}

impl UpBlock {
    fn forward(
        &self,
        x: &Tensor,
        temb: &Tensor,
        context: &Tensor,
        skips: &mut Vec<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            let Some(skip) = skips.pop() else {
                candle_core::bail!("UNet up block ran out of skip connections")
            };
            h = resnet.forward(&Tensor::cat(&[&h, &skip], 1)?, Some(temb))?;
            if let Some(attn) = self.attentions.get(i) {
                h = attn.forward(&h, context)?;
            }
        }
        if let Some(u) = &self.upsampler {
            // diffusers' `upsample_size`: match the next skip (odd latent sizes).
            let size = match skips.last() {
                Some(s) => Some((s.dim(2)?, s.dim(3)?)),
                None => None,
            };
            h = u.forward(&h, size)?;
        }
        Ok(h)
    }
}

/// `UNetMidBlock2DCrossAttn`: resnet, then (transformer, resnet) pairs.
#[derive(Debug, Clone)]
struct MidBlock {
    first: ResnetBlock2D,
    pairs: Vec<(Transformer2D, ResnetBlock2D)>,
}

impl MidBlock {
    fn forward(&self, x: &Tensor, temb: &Tensor, context: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.first.forward(x, Some(temb))?;
        for (attn, resnet) in &self.pairs {
            h = resnet.forward(&attn.forward(&h, context)?, Some(temb))?;
        }
        Ok(h)
    }
}

/// Every intermediate the golden `unet` case records, and the output.
#[derive(Debug, Clone)]
pub struct UNetIntermediates {
    /// `[B, block_out_channels[0]]` sinusoidal timestep features.
    pub time_proj: Tensor,
    /// `[B, time_embed_dim]` time MLP output.
    pub time_embedding: Tensor,
    pub conv_in: Tensor,
    /// Output of each down block (after its downsampler).
    pub down_blocks: Vec<Tensor>,
    pub mid_block: Tensor,
    /// Output of each up block (after its upsampler).
    pub up_blocks: Vec<Tensor>,
    /// `[B, out_channels, H, W]` the prediction.
    pub sample: Tensor,
}

/// diffusers `UNet2DConditionModel` (SD 1.x / 2.x).
#[derive(Debug, Clone)]
pub struct UNet2DConditionModel {
    config: UNet2DConditionConfig,
    time_proj: TimeProj,
    time_linear_1: Linear,
    time_linear_2: Linear,
    conv_in: Conv2d,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    /// Cross-attention width the text embeddings must have (the first block's).
    context_dim: usize,
    /// The weights' dtype, in which the network computes (norms and softmax in f32).
    dtype: DType,
}

impl UNet2DConditionModel {
    /// Loads a diffusers `UNet2DConditionModel` folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, e.g. SD's `unet/`) onto `device`, as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, SdError> {
        let config_path = dir.join(UNET_CONFIG_FILE);
        let config: UNet2DConditionConfig = read_json(&config_path, "UNet2DConditionModel")?;
        // A config this port cannot run is reported before the weights are read.
        config.check(&config_path.display().to_string())?;
        let path = first_existing(dir, &UNET_WEIGHTS_FILES);
        let tensors = read_safetensors(&path, "the UNet weights")?;
        Self::from_tensors(&config, tensors, device, dtype, &path.display().to_string())
    }

    /// A model from checkpoint tensors (diffusers names), weights as `dtype` on `device`.
    pub fn from_tensors(
        config: &UNet2DConditionConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, SdError> {
        let plan = config.check(origin)?;
        let time_proj = TimeProj::new(
            config.block_out_channels[0],
            config.flip_sin_to_cos,
            config.freq_shift,
            device,
        )?;
        build_checked(tensors, device, dtype, origin, &[], |vb| {
            Self::build(config, &plan, time_proj, vb)
        })
    }

    fn build(
        c: &UNet2DConditionConfig,
        plan: &BlockPlan,
        time_proj: TimeProj,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let ch = &c.block_out_channels;
        let n = ch.len();
        let temb = c.time_embed_dim();
        let resnet = |cin, cout, scale| ResnetSpec {
            in_channels: cin,
            out_channels: cout,
            temb_channels: Some(temb),
            groups: c.norm_num_groups,
            eps: c.norm_eps,
            output_scale_factor: scale,
        };
        let transformer = |channels, i: usize| TransformerSpec {
            channels,
            heads: plan.heads[i],
            cross_attention_dim: plan.cross[i],
            layers: plan.layers[i],
            groups: c.norm_num_groups,
            use_linear_projection: c.use_linear_projection,
        };

        let mut down_blocks = Vec::with_capacity(n);
        let mut cin = ch[0];
        for (i, &cout) in ch.iter().enumerate() {
            let bvb = vb.pp("down_blocks").pp(i);
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..c.layers_per_block {
                let from = if j == 0 { cin } else { cout };
                let spec = resnet(from, cout, c.resnet_out_scale_factor);
                resnets.push(ResnetBlock2D::new(spec, bvb.pp("resnets").pp(j))?);
                if plan.down_cross[i] {
                    let spec = transformer(cout, i);
                    attentions.push(Transformer2D::new(spec, bvb.pp("attentions").pp(j))?);
                }
            }
            let downsampler = if i + 1 < n {
                let padding = c.downsample_padding as usize;
                Some(Downsample2D::new(cout, padding, bvb.pp("downsamplers.0"))?)
            } else {
                None
            };
            down_blocks.push(DownBlock {
                resnets,
                attentions,
                downsampler,
            });
            cin = cout;
        }

        let mid = ch[n - 1];
        let mvb = vb.pp("mid_block");
        let mid_spec = resnet(mid, mid, c.mid_block_scale_factor);
        let pairs = (0..1)
            .map(|k| {
                Ok((
                    Transformer2D::new(transformer(mid, n - 1), mvb.pp("attentions").pp(k))?,
                    ResnetBlock2D::new(mid_spec, mvb.pp("resnets").pp(k + 1))?,
                ))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mid_block = MidBlock {
            first: ResnetBlock2D::new(mid_spec, mvb.pp("resnets.0"))?,
            pairs,
        };

        let mut up_blocks = Vec::with_capacity(n);
        let mut prev = ch[n - 1];
        for i in 0..n {
            let block = n - 1 - i; // the matching down block
            let cout = ch[block];
            let skip_in = ch[block.saturating_sub(1)];
            let bvb = vb.pp("up_blocks").pp(i);
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..c.layers_per_block + 1 {
                let skip = if j == c.layers_per_block {
                    skip_in
                } else {
                    cout
                };
                let from = if j == 0 { prev } else { cout };
                let spec = resnet(from + skip, cout, c.resnet_out_scale_factor);
                resnets.push(ResnetBlock2D::new(spec, bvb.pp("resnets").pp(j))?);
                if plan.up_cross[i] {
                    let spec = transformer(cout, block);
                    attentions.push(Transformer2D::new(spec, bvb.pp("attentions").pp(j))?);
                }
            }
            let upsampler = if i + 1 < n {
                Some(Upsample2D::new(cout, bvb.pp("upsamplers.0"))?)
            } else {
                None
            };
            up_blocks.push(UpBlock {
                resnets,
                attentions,
                upsampler,
            });
            prev = cout;
        }

        let (kin, kout) = (c.conv_in_kernel, c.conv_out_kernel);
        Ok(Self {
            config: c.clone(),
            time_proj,
            time_linear_1: Linear::new(ch[0], temb, vb.pp("time_embedding.linear_1"))?,
            time_linear_2: Linear::new(temb, temb, vb.pp("time_embedding.linear_2"))?,
            conv_in: Conv2d::new(
                c.in_channels,
                ch[0],
                kin,
                1,
                (kin - 1) / 2,
                vb.pp("conv_in"),
            )?,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::new(
                c.norm_num_groups,
                ch[0],
                c.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: Conv2d::new(
                ch[0],
                c.out_channels,
                kout,
                1,
                (kout - 1) / 2,
                vb.pp("conv_out"),
            )?,
            context_dim: plan.cross[0],
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &UNet2DConditionConfig {
        &self.config
    }

    /// The weights' dtype; inputs are cast to it and outputs come back in it.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The prediction for `sample [B, in_channels, H, W]` at `timesteps` (a scalar or `[B]`,
    /// any numeric dtype; SD passes integers 0..999) with text embeddings
    /// `context [B, L, cross_attention_dim]` -> `[B, out_channels, H, W]`. Sample and
    /// context are cast to [`Self::dtype`], in which the prediction comes back.
    pub fn forward(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        context: &Tensor,
    ) -> Result<Tensor, SdError> {
        Ok(self
            .forward_with_intermediates(sample, timesteps, context)?
            .sample)
    }

    /// [`Self::forward`] at one timestep `t` for the whole batch.
    pub fn forward_at(&self, sample: &Tensor, t: f64, context: &Tensor) -> Result<Tensor, SdError> {
        let t = Tensor::new(t as f32, sample.device())?;
        self.forward(sample, &t, context)
    }

    /// [`Self::forward`] keeping every block's output (for parity checks and debugging).
    pub fn forward_with_intermediates(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        context: &Tensor,
    ) -> Result<UNetIntermediates, SdError> {
        let b = self.check_inputs(sample, context)?;
        let t = match timesteps.rank() {
            0 => timesteps
                .to_dtype(DType::F32)?
                .broadcast_as(b)?
                .contiguous()?,
            1 if timesteps.dim(0)? == b => timesteps.to_dtype(DType::F32)?,
            _ => {
                return Err(SdError::input(
                    "timesteps",
                    format!("expected a scalar or [{b}], got {:?}", timesteps.dims()),
                ))
            }
        };
        // The sinusoid is f32 (one ulp matters at t ~ 1000); the MLP runs in the weights' dtype.
        let time_proj = self.time_proj.forward(&t)?;
        let features = time_proj.to_dtype(self.dtype)?;
        let time_embedding = self
            .time_linear_2
            .forward(&self.time_linear_1.forward(&features)?.silu()?)?;
        let temb_act = time_embedding.silu()?;

        let sample = sample.to_dtype(self.dtype)?;
        let context = &context.to_dtype(self.dtype)?;
        let x = if self.config.center_input_sample {
            ((sample * 2.0)? - 1.0)?
        } else {
            sample
        };
        let conv_in = self.conv_in.forward(&x)?;
        let mut skips = vec![conv_in.clone()];
        let mut h = conv_in.clone();
        let mut down_blocks = Vec::with_capacity(self.down_blocks.len());
        for block in &self.down_blocks {
            h = block.forward(&h, &temb_act, context, &mut skips)?;
            down_blocks.push(h.clone());
        }
        h = self.mid_block.forward(&h, &temb_act, context)?;
        let mid_block = h.clone();
        let mut up_blocks = Vec::with_capacity(self.up_blocks.len());
        for block in &self.up_blocks {
            h = block.forward(&h, &temb_act, context, &mut skips)?;
            up_blocks.push(h.clone());
        }
        let out = self
            .conv_out
            .forward(&self.conv_norm_out.forward_silu(&h)?)?;
        Ok(UNetIntermediates {
            time_proj,
            time_embedding,
            conv_in,
            down_blocks,
            mid_block,
            up_blocks,
            sample: out,
        })
    }

    /// Checks shapes and returns the batch size.
    fn check_inputs(&self, sample: &Tensor, context: &Tensor) -> Result<usize, SdError> {
        let (b, c, _, _) = sample.dims4().map_err(|_| {
            SdError::input(
                "sample",
                format!("expected [B, C, H, W], got {:?}", sample.dims()),
            )
        })?;
        if c != self.config.in_channels {
            return Err(SdError::input(
                "sample",
                format!(
                    "has {c} channels, the UNet takes {}",
                    self.config.in_channels
                ),
            ));
        }
        match context.dims3() {
            Ok((cb, _, cd)) if cb == b && cd == self.context_dim => Ok(b),
            _ => Err(SdError::input(
                "encoder_hidden_states",
                format!(
                    "expected [{b}, L, {}], got {:?}",
                    self.context_dim,
                    context.dims()
                ),
            )),
        }
    }
}
