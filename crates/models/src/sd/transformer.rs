//! The spatial transformer of the SD UNet: text conditioning through cross-attention.
//!
//! Ports `Transformer2DModel` (continuous input, `norm_type="layer_norm"`; diffusers
//! `models/transformers/transformer_2d.py`), `BasicTransformerBlock` and `FeedForward` with
//! `GEGLU` (`models/attention.py`, `models/activations.py`) and `Attention` as
//! `AttnProcessor2_0` runs it (`models/attention_processor.py`). GEGLU uses the exact erf
//! GELU, as PyTorch's `F.gelu` (the tanh approximation is off by ~5e-5 on the fixture).
//! Weight names: `norm`, `proj_in`, `transformer_blocks.{i}.{norm1,attn1,norm2,attn2,norm3,
//! ff.net.0.proj,ff.net.2}`, `proj_out`; attention `to_q`, `to_k`, `to_v` (no bias) and
//! `to_out.0`.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::layers::{attention, merge_heads, split_heads, LayerNorm, Linear};
use crate::unet::layers::{Conv2d, GroupNorm};

/// diffusers' transformer-block `LayerNorm` epsilon.
const BLOCK_NORM_EPS: f64 = 1e-5;
/// `Transformer2DModel`'s group-norm epsilon.
const GROUP_NORM_EPS: f64 = 1e-6;

/// Shape of one [`Transformer2D`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransformerSpec {
    pub channels: usize,
    pub heads: usize,
    /// Width of the text embeddings the cross-attention reads.
    pub cross_attention_dim: usize,
    pub layers: usize,
    pub groups: usize,
    /// `proj_in` / `proj_out` are linear layers (SD 2.x) instead of 1x1 convs (SD 1.x).
    pub use_linear_projection: bool,
}

/// Multi-head attention over a sequence, keys/values from itself or from a context.
#[derive(Debug, Clone)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn new(dim: usize, context_dim: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            to_q: Linear::no_bias(dim, dim, vb.pp("to_q"))?,
            to_k: Linear::no_bias(context_dim, dim, vb.pp("to_k"))?,
            to_v: Linear::no_bias(context_dim, dim, vb.pp("to_v"))?,
            to_out: Linear::new(dim, dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    /// `x [B, N, dim]`, `context [B, M, context_dim]` -> `[B, N, dim]`.
    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let q = split_heads(&self.to_q.forward(x)?, self.heads)?;
        let k = split_heads(&self.to_k.forward(context)?, self.heads)?;
        let v = split_heads(&self.to_v.forward(context)?, self.heads)?;
        let scale = 1.0 / (q.dim(3)? as f64).sqrt();
        self.to_out
            .forward(&merge_heads(&attention(&q, &k, &v, scale, None)?)?)
    }
}

/// `FeedForward` with `GEGLU`: `net.2(a * gelu_erf(g))` where `[a | g] = net.0.proj(x)`.
#[derive(Debug, Clone)]
struct GegluFeedForward {
    proj: Linear,
    out: Linear,
}

impl GegluFeedForward {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            proj: Linear::new(dim, 2 * inner, vb.pp("net.0.proj"))?,
            out: Linear::new(inner, dim, vb.pp("net.2"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        let inner = h.dim(D::Minus1)? / 2;
        let (a, gate) = (
            h.narrow(D::Minus1, 0, inner)?,
            h.narrow(D::Minus1, inner, inner)?,
        );
        self.out.forward(&(a * gate.gelu_erf()?)?)
    }
}

/// `BasicTransformerBlock`: self-attention, cross-attention, GEGLU MLP, each pre-norm with
/// a residual.
#[derive(Debug, Clone)]
struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: GegluFeedForward,
}

impl BasicTransformerBlock {
    fn new(dim: usize, heads: usize, context_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm1"))?,
            attn1: Attention::new(dim, dim, heads, vb.pp("attn1"))?,
            norm2: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm2"))?,
            attn2: Attention::new(dim, context_dim, heads, vb.pp("attn2"))?,
            norm3: LayerNorm::new(dim, BLOCK_NORM_EPS, vb.pp("norm3"))?,
            ff: GegluFeedForward::new(dim, vb.pp("ff"))?,
        })
    }

    /// `x [B, N, dim]`, `context [B, M, C]` -> `[B, N, dim]`.
    fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let h = self.norm1.forward(x)?;
        let x = (self.attn1.forward(&h, &h)? + x)?;
        let x = (self.attn2.forward(&self.norm2.forward(&x)?, context)? + x)?;
        self.ff.forward(&self.norm3.forward(&x)?)? + x
    }
}

/// The in/out projection: a 1x1 conv on the feature map or a linear layer on the tokens.
#[derive(Debug, Clone)]
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

impl Projection {
    fn new(channels: usize, linear: bool, vb: VarBuilder) -> Result<Self> {
        Ok(if linear {
            Self::Linear(Linear::new(channels, channels, vb)?)
        } else {
            Self::Conv(Conv2d::new(channels, channels, 1, 1, 0, vb)?)
        })
    }
}

/// `Transformer2DModel`: group norm, project in, transformer blocks over the `H*W` tokens,
/// project out, residual.
#[derive(Debug, Clone)]
pub(crate) struct Transformer2D {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
}

impl Transformer2D {
    pub(crate) fn new(spec: TransformerSpec, vb: VarBuilder) -> Result<Self> {
        let c = spec.channels;
        let blocks = (0..spec.layers)
            .map(|i| {
                BasicTransformerBlock::new(
                    c,
                    spec.heads,
                    spec.cross_attention_dim,
                    vb.pp("transformer_blocks").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let linear = spec.use_linear_projection;
        Ok(Self {
            norm: GroupNorm::new(spec.groups, c, GROUP_NORM_EPS, vb.pp("norm"))?,
            proj_in: Projection::new(c, linear, vb.pp("proj_in"))?,
            blocks,
            proj_out: Projection::new(c, linear, vb.pp("proj_out"))?,
        })
    }

    /// `x [B, C, H, W]`, `context [B, M, cross_attention_dim]` -> `[B, C, H, W]`.
    pub(crate) fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let normed = self.norm.forward(x)?;
        let to_tokens =
            |t: &Tensor| -> Result<Tensor> { t.permute((0, 2, 3, 1))?.reshape((b, h * w, c)) };
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(&conv.forward(&normed)?)?,
            Projection::Linear(lin) => lin.forward(&to_tokens(&normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let to_map = |t: &Tensor| -> Result<Tensor> {
            t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_map(&tokens)?)?,
            Projection::Linear(lin) => to_map(&lin.forward(&tokens)?)?,
        };
        out + x
    }
}
