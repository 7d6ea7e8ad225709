//! The SD3 denoiser: diffusers `SD3Transformer2DModel` (MMDiT), SD3.0 style.
//!
//! Ports `models/transformers/transformer_sd3.py` with its pieces: `PatchEmbed` (a
//! patch-size conv, plus the stored sin-cos `pos_embed` table cropped to the centre,
//! `models/embeddings.py`), `CombinedTimestepTextProjEmbeddings` (256-dim sinusoid of the
//! timestep -> MLP, plus an MLP of the pooled text embedding), `context_embedder`,
//! `JointTransformerBlock`s (`models/attention.py`) whose image and text streams each get
//! AdaLN-zero modulation and attend jointly (`JointAttnProcessor2_0`: image tokens first,
//! then text tokens), the last block `context_pre_only` (its text stream only feeds the
//! attention), then `AdaLayerNormContinuous` (`norm_out`, scale before shift), `proj_out`
//! and unpatchify. The feed-forwards use the tanh GELU (`gelu-approximate`).
//!
//! Not supported (refused by config): SD3.5's `qk_norm` and `dual_attention_layers`.
//!
//! The model predicts the flow velocity `noise - x0` at `timestep = sigma * 1000`, which is
//! this project's convention as is.
//!
//! Weights may be f16 / bf16 ([`Sd3Transformer2DModel::load_as`]): inputs are cast to the
//! weights' dtype, the timestep sinusoid, the layer norms and the softmax run in f32.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::sd::error::SdError;
use crate::sd::layers::{attention, in_f32, merge_heads, split_heads, Linear};
use crate::sd::unet_cond::TimeProj;
use crate::sd::weights::{build_checked, first_existing, read_json, read_safetensors};
use crate::unet::layers::Conv2d;

/// The config file of a diffusers model folder.
pub const TRANSFORMER_CONFIG_FILE: &str = "config.json";
/// The weights file names tried, in order.
pub const TRANSFORMER_WEIGHTS_FILES: [&str; 2] = [
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
];
/// The epsilon of every norm in the model (diffusers hard-codes it).
const NORM_EPS: f64 = 1e-6;
/// Width of the timestep sinusoid (`Timesteps(num_channels=256)`).
const TIME_PROJ_DIM: usize = 256;

fn default_sample_size() -> usize {
    128
}
fn default_patch_size() -> usize {
    2
}
fn default_channels() -> usize {
    16
}
fn default_layers() -> usize {
    18
}
fn default_head_dim() -> usize {
    64
}
fn default_heads() -> usize {
    18
}
fn default_joint_dim() -> usize {
    4096
}
fn default_caption_dim() -> usize {
    1152
}
fn default_pooled_dim() -> usize {
    2048
}
fn default_pos_embed_max_size() -> Option<usize> {
    Some(96)
}

/// diffusers `SD3Transformer2DModel`'s config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Sd3TransformerConfig {
    /// Latent height and width the model was trained at.
    #[serde(default = "default_sample_size")]
    pub sample_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "default_channels")]
    pub in_channels: usize,
    /// Defaults to `in_channels`.
    #[serde(default)]
    pub out_channels: Option<usize>,
    #[serde(default = "default_layers")]
    pub num_layers: usize,
    #[serde(default = "default_head_dim")]
    pub attention_head_dim: usize,
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    /// Width of the text tokens (`prompt_embeds`).
    #[serde(default = "default_joint_dim")]
    pub joint_attention_dim: usize,
    #[serde(default = "default_caption_dim")]
    pub caption_projection_dim: usize,
    /// Width of the pooled text embedding.
    #[serde(default = "default_pooled_dim")]
    pub pooled_projection_dim: usize,
    #[serde(default = "default_pos_embed_max_size")]
    pub pos_embed_max_size: Option<usize>,
    #[serde(default)]
    pub dual_attention_layers: Vec<usize>,
    #[serde(default)]
    pub qk_norm: Option<String>,
}

impl Sd3TransformerConfig {
    /// `num_attention_heads * attention_head_dim`, the width of both streams.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    fn check(&self, origin: &str) -> Result<(), SdError> {
        let bad = |field, detail: String| {
            SdError::unsupported(origin, "SD3Transformer2DModel", field, detail)
        };
        if let Some(norm) = &self.qk_norm {
            return Err(bad(
                "qk_norm",
                format!("= {norm:?}; SD3.5's qk-norm is not supported (SD3.0 has none)"),
            ));
        }
        if !self.dual_attention_layers.is_empty() {
            return Err(bad(
                "dual_attention_layers",
                "is not empty; SD3.5's dual attention is not supported".into(),
            ));
        }
        if self.num_layers == 0 || self.num_attention_heads == 0 || self.patch_size == 0 {
            return Err(bad(
                "num_layers",
                "num_layers, num_attention_heads and patch_size must be at least 1".into(),
            ));
        }
        if self.caption_projection_dim != self.inner_dim() {
            return Err(bad(
                "caption_projection_dim",
                format!(
                    "= {} must equal num_attention_heads * attention_head_dim = {}",
                    self.caption_projection_dim,
                    self.inner_dim()
                ),
            ));
        }
        match self.pos_embed_max_size {
            Some(m) if m * self.patch_size >= self.sample_size => Ok(()),
            Some(m) => Err(bad(
                "pos_embed_max_size",
                format!(
                    "= {m} patches cannot cover sample_size {}",
                    self.sample_size
                ),
            )),
            None => Err(bad(
                "pos_embed_max_size",
                "is null; SD3 checkpoints store their position table and set it".into(),
            )),
        }
    }
}

/// Intermediate activations of one forward pass (for parity checks).
#[derive(Debug, Clone)]
pub struct Sd3Intermediates {
    /// `[B, N, inner]` patch embedding plus cropped position table.
    pub patch_embed: Tensor,
    /// `[B, inner]` timestep embedding plus pooled text embedding.
    pub temb: Tensor,
    /// `[B, L, inner]` the text tokens after `context_embedder`.
    pub context: Tensor,
    /// `[B, C_out, H, W]` the velocity.
    pub sample: Tensor,
}

/// `nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)` over the last axis, in f32.
fn layer_norm(x: &Tensor) -> candle_core::Result<Tensor> {
    in_f32(x, |x| {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        centered.broadcast_div(&(var + NORM_EPS)?.sqrt()?)
    })
}

/// `x * (1 + scale[:, None]) + shift[:, None]` for `x [B, N, D]`, `scale, shift [B, D]`.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
        .broadcast_add(&shift.unsqueeze(1)?)
}

/// `chunk(n, dim=1)` of `[B, n * D]`.
fn chunks(x: &Tensor, n: usize) -> candle_core::Result<Vec<Tensor>> {
    let d = x.dim(1)? / n;
    (0..n).map(|i| x.narrow(1, i * d, d)).collect()
}

/// `linear_2(silu(linear_1(x)))` (`TimestepEmbedding`, `PixArtAlphaTextProjection`).
#[derive(Debug, Clone)]
struct Mlp {
    linear_1: Linear,
    linear_2: Linear,
}

impl Mlp {
    fn new(input: usize, dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            linear_1: Linear::new(input, dim, vb.pp("linear_1"))?,
            linear_2: Linear::new(dim, dim, vb.pp("linear_2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}

/// `FeedForward(activation_fn="gelu-approximate")`: `net.2(gelu_tanh(net.0.proj(x)))`.
#[derive(Debug, Clone)]
struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    fn new(dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            proj: Linear::new(dim, 4 * dim, vb.pp("net.0.proj"))?,
            out: Linear::new(4 * dim, dim, vb.pp("net.2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.out.forward(&self.proj.forward(x)?.gelu()?)
    }
}

/// The text stream's norm: AdaLN-zero (6 chunks) or, in the `context_pre_only` block,
/// `AdaLayerNormContinuous` (scale, shift).
#[derive(Debug, Clone)]
enum ContextStream {
    Full {
        norm1: Linear,
        to_add_out: Linear,
        ff: FeedForward,
    },
    PreOnly {
        norm1: Linear,
    },
}

/// One `JointTransformerBlock`.
#[derive(Debug, Clone)]
struct JointBlock {
    /// AdaLN-zero: `silu(temb) -> [shift, scale, gate]_msa, [shift, scale, gate]_mlp`.
    norm1: Linear,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    add_q: Linear,
    add_k: Linear,
    add_v: Linear,
    to_out: Linear,
    ff: FeedForward,
    context: ContextStream,
    heads: usize,
}

impl JointBlock {
    fn new(dim: usize, heads: usize, pre_only: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let attn = vb.pp("attn");
        let context = if pre_only {
            ContextStream::PreOnly {
                norm1: Linear::new(dim, 2 * dim, vb.pp("norm1_context.linear"))?,
            }
        } else {
            ContextStream::Full {
                norm1: Linear::new(dim, 6 * dim, vb.pp("norm1_context.linear"))?,
                to_add_out: Linear::new(dim, dim, attn.pp("to_add_out"))?,
                ff: FeedForward::new(dim, vb.pp("ff_context"))?,
            }
        };
        Ok(Self {
            norm1: Linear::new(dim, 6 * dim, vb.pp("norm1.linear"))?,
            to_q: Linear::new(dim, dim, attn.pp("to_q"))?,
            to_k: Linear::new(dim, dim, attn.pp("to_k"))?,
            to_v: Linear::new(dim, dim, attn.pp("to_v"))?,
            add_q: Linear::new(dim, dim, attn.pp("add_q_proj"))?,
            add_k: Linear::new(dim, dim, attn.pp("add_k_proj"))?,
            add_v: Linear::new(dim, dim, attn.pp("add_v_proj"))?,
            to_out: Linear::new(dim, dim, attn.pp("to_out.0"))?,
            ff: FeedForward::new(dim, vb.pp("ff"))?,
            context,
            heads,
        })
    }

    /// Joint attention over `[image; text]` tokens -> (image part, text part).
    fn attend(&self, x: &Tensor, c: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let h = self.heads;
        let qkv = |p: &Linear, q: &Linear| -> candle_core::Result<Tensor> {
            Tensor::cat(
                &[
                    &split_heads(&p.forward(x)?, h)?,
                    &split_heads(&q.forward(c)?, h)?,
                ],
                2,
            )
        };
        let q = qkv(&self.to_q, &self.add_q)?;
        let k = qkv(&self.to_k, &self.add_k)?;
        let v = qkv(&self.to_v, &self.add_v)?;
        let scale = 1.0 / (q.dim(3)? as f64).sqrt();
        let out = merge_heads(&attention(&q, &k, &v, scale, None)?)?;
        let n = x.dim(1)?;
        let m = c.dim(1)?;
        Ok((out.narrow(1, 0, n)?, out.narrow(1, n, m)?))
    }

    /// `x [B, N, D]`, `c [B, L, D]`, `silu_temb [B, D]` -> (x, c; `None` after the last).
    fn forward(
        &self,
        x: &Tensor,
        c: &Tensor,
        silu_temb: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let m = chunks(&self.norm1.forward(silu_temb)?, 6)?;
        let (shift_msa, scale_msa, gate_msa) = (&m[0], &m[1], &m[2]);
        let (shift_mlp, scale_mlp, gate_mlp) = (&m[3], &m[4], &m[5]);
        let norm_x = modulate(&layer_norm(x)?, shift_msa, scale_msa)?;
        let (norm_c, context_mod) = match &self.context {
            ContextStream::Full { norm1, .. } => {
                let cm = chunks(&norm1.forward(silu_temb)?, 6)?;
                (modulate(&layer_norm(c)?, &cm[0], &cm[1])?, Some(cm))
            }
            ContextStream::PreOnly { norm1 } => {
                let cm = chunks(&norm1.forward(silu_temb)?, 2)?;
                // AdaLayerNormContinuous: scale first, then shift.
                (modulate(&layer_norm(c)?, &cm[1], &cm[0])?, None)
            }
        };
        let (attn_x, attn_c) = self.attend(&norm_x, &norm_c)?;
        let gated = self
            .to_out
            .forward(&attn_x)?
            .broadcast_mul(&gate_msa.unsqueeze(1)?)?;
        let x = (x + gated)?;
        let ff = self
            .ff
            .forward(&modulate(&layer_norm(&x)?, shift_mlp, scale_mlp)?)?;
        let x = (&x + ff.broadcast_mul(&gate_mlp.unsqueeze(1)?)?)?;
        let c = match (&self.context, context_mod) {
            (ContextStream::Full { to_add_out, ff, .. }, Some(cm)) => {
                let gated = to_add_out
                    .forward(&attn_c)?
                    .broadcast_mul(&cm[2].unsqueeze(1)?)?;
                let c = (c + gated)?;
                let out = ff.forward(&modulate(&layer_norm(&c)?, &cm[3], &cm[4])?)?;
                Some((&c + out.broadcast_mul(&cm[5].unsqueeze(1)?)?)?)
            }
            _ => None,
        };
        Ok((x, c))
    }
}

/// diffusers `SD3Transformer2DModel`.
#[derive(Debug, Clone)]
pub struct Sd3Transformer2DModel {
    config: Sd3TransformerConfig,
    patch_proj: Conv2d,
    /// `[1, max * max, inner]` the stored sin-cos table of a `max x max` patch grid.
    pos_embed: Tensor,
    time_proj: TimeProj,
    timestep_embedder: Mlp,
    text_embedder: Mlp,
    context_embedder: Linear,
    blocks: Vec<JointBlock>,
    /// `AdaLayerNormContinuous`: `silu(temb) -> [scale, shift]`.
    norm_out: Linear,
    proj_out: Linear,
    /// The weights' dtype, in which the network computes.
    dtype: DType,
}

impl Sd3Transformer2DModel {
    /// Loads a diffusers `SD3Transformer2DModel` folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, SD3's `transformer/`) onto `device`, as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, SdError> {
        let config_path = dir.join(TRANSFORMER_CONFIG_FILE);
        let config: Sd3TransformerConfig = read_json(&config_path, "SD3Transformer2DModel")?;
        config.check(&config_path.display().to_string())?;
        let path = first_existing(dir, &TRANSFORMER_WEIGHTS_FILES);
        let tensors = read_safetensors(&path, "the SD3 transformer weights")?;
        Self::from_tensors(&config, tensors, device, dtype, &path.display().to_string())
    }

    /// A model from checkpoint tensors (diffusers names), weights as `dtype` on `device`.
    pub fn from_tensors(
        config: &Sd3TransformerConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, SdError> {
        config.check(origin)?;
        let time_proj = TimeProj::new(TIME_PROJ_DIM, true, 0.0, device)?;
        build_checked(tensors, device, dtype, origin, &[], |vb| {
            Self::build(config, time_proj, vb)
        })
    }

    fn build(
        c: &Sd3TransformerConfig,
        time_proj: TimeProj,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let dim = c.inner_dim();
        let p = c.patch_size;
        let max = c.pos_embed_max_size.unwrap_or(c.sample_size / p);
        let blocks = (0..c.num_layers)
            .map(|i| {
                let pre_only = i + 1 == c.num_layers;
                JointBlock::new(
                    dim,
                    c.num_attention_heads,
                    pre_only,
                    vb.pp("transformer_blocks").pp(i),
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embed = vb.pp("time_text_embed");
        Ok(Self {
            config: c.clone(),
            patch_proj: Conv2d::new(c.in_channels, dim, p, p, 0, vb.pp("pos_embed.proj"))?,
            pos_embed: vb.get((1, max * max, dim), "pos_embed.pos_embed")?,
            time_proj,
            timestep_embedder: Mlp::new(TIME_PROJ_DIM, dim, embed.pp("timestep_embedder"))?,
            text_embedder: Mlp::new(c.pooled_projection_dim, dim, embed.pp("text_embedder"))?,
            context_embedder: Linear::new(
                c.joint_attention_dim,
                c.caption_projection_dim,
                vb.pp("context_embedder"),
            )?,
            blocks,
            norm_out: Linear::new(dim, 2 * dim, vb.pp("norm_out.linear"))?,
            proj_out: Linear::new(dim, p * p * c.out_channels(), vb.pp("proj_out"))?,
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &Sd3TransformerConfig {
        &self.config
    }

    /// The weights' dtype: inputs are cast to it and outputs come back in it.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `PatchEmbed`: `x [B, C, H, W] -> [B, (H/p)(W/p), inner]`, the patch conv plus the
    /// centre crop of the position table.
    pub fn patch_embed(&self, x: &Tensor) -> Result<Tensor, SdError> {
        let (_, c, h, w) = x.dims4().map_err(|_| {
            SdError::input(
                "sample",
                format!("expected [B, C, H, W], got {:?}", x.dims()),
            )
        })?;
        let p = self.config.patch_size;
        let max = self.config.pos_embed_max_size.unwrap_or(0);
        if c != self.config.in_channels || h % p != 0 || w % p != 0 || h / p > max || w / p > max {
            return Err(SdError::input(
                "sample",
                format!(
                    "shape {:?}: needs {} channels and a height and width divisible by {p}, \
                     at most {} ({max} patches)",
                    x.dims(),
                    self.config.in_channels,
                    max * p
                ),
            ));
        }
        let (gh, gw) = (h / p, w / p);
        let tokens = self
            .patch_proj
            .forward(&x.to_dtype(self.dtype)?)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let dim = self.config.inner_dim();
        let crop = self
            .pos_embed
            .reshape((max, max, dim))?
            .narrow(0, (max - gh) / 2, gh)?
            .narrow(1, (max - gw) / 2, gw)?
            .reshape((1, gh * gw, dim))?;
        Ok(tokens.broadcast_add(&crop)?)
    }

    /// `temb [B, inner]` = timestep MLP of the 256-dim sinusoid of `timestep [B]` plus
    /// the MLP of `pooled [B, pooled_projection_dim]`.
    pub fn time_text_embed(&self, timestep: &Tensor, pooled: &Tensor) -> Result<Tensor, SdError> {
        // The sinusoid is f32; the MLPs run in the weights' dtype.
        let features = self.time_proj.forward(timestep)?.to_dtype(self.dtype)?;
        let t = self.timestep_embedder.forward(&features)?;
        Ok((t + self.text_embedder.forward(&pooled.to_dtype(self.dtype)?)?)?)
    }

    /// `context_embedder`: `[B, L, joint_attention_dim] -> [B, L, inner]`.
    pub fn context_embed(&self, context: &Tensor) -> Result<Tensor, SdError> {
        Ok(self
            .context_embedder
            .forward(&context.to_dtype(self.dtype)?)?)
    }

    /// The velocity `[B, C_out, H, W]` of `x [B, C, H, W]` at `timestep [B]` (f32,
    /// `sigma * 1000`), with text tokens `context [B, L, joint_attention_dim]` and
    /// `pooled [B, pooled_projection_dim]`.
    pub fn forward(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<Tensor, SdError> {
        Ok(self
            .forward_with_intermediates(x, timestep, context, pooled)?
            .sample)
    }

    /// [`Self::forward`] with one scalar timestep for the whole batch.
    pub fn forward_at(
        &self,
        x: &Tensor,
        timestep: f32,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<Tensor, SdError> {
        let b = x.dim(0)?;
        let t = Tensor::full(timestep, b, x.device())?;
        self.forward(x, &t, context, pooled)
    }

    /// [`Self::forward`], keeping the embeddings it computes on the way.
    pub fn forward_with_intermediates(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<Sd3Intermediates, SdError> {
        self.check_inputs(x, timestep, context, pooled)?;
        let (_, _, h, w) = x.dims4()?;
        let patch_embed = self.patch_embed(x)?;
        let temb = self.time_text_embed(timestep, pooled)?;
        let context = self.context_embed(context)?;
        let silu_temb = temb.silu()?;
        let (mut hidden, mut text) = (patch_embed.clone(), Some(context.clone()));
        for block in &self.blocks {
            let Some(c) = text else {
                // Only the last block drops the text stream, so this cannot happen.
                return Err(SdError::input("blocks", "text stream ended early"));
            };
            (hidden, text) = block.forward(&hidden, &c, &silu_temb)?;
        }
        let mods = chunks(&self.norm_out.forward(&silu_temb)?, 2)?;
        let hidden = modulate(&layer_norm(&hidden)?, &mods[1], &mods[0])?;
        let sample = self.unpatchify(&self.proj_out.forward(&hidden)?, h, w)?;
        Ok(Sd3Intermediates {
            patch_embed,
            temb,
            context,
            sample,
        })
    }

    /// `[B, (H/p)(W/p), p*p*C] -> [B, C, H, W]` (einsum `nhwpqc->nchpwq`).
    fn unpatchify(&self, x: &Tensor, h: usize, w: usize) -> candle_core::Result<Tensor> {
        let p = self.config.patch_size;
        let c = self.config.out_channels();
        let b = x.dim(0)?;
        x.reshape((b, h / p, w / p, p, p, c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c, h, w))
    }

    fn check_inputs(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<(), SdError> {
        let b = x.dim(0)?;
        let c = &self.config;
        if timestep.dims() != [b] {
            return Err(SdError::input(
                "timestep",
                format!("expected [{b}], got {:?}", timestep.dims()),
            ));
        }
        if context.rank() != 3 || context.dim(0)? != b || context.dim(2)? != c.joint_attention_dim {
            return Err(SdError::input(
                "context",
                format!(
                    "expected [{b}, L, {}], got {:?}",
                    c.joint_attention_dim,
                    context.dims()
                ),
            ));
        }
        if pooled.dims() != [b, c.pooled_projection_dim] {
            return Err(SdError::input(
                "pooled",
                format!(
                    "expected [{b}, {}], got {:?}",
                    c.pooled_projection_dim,
                    pooled.dims()
                ),
            ));
        }
        Ok(())
    }
}
