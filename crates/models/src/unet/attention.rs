//! Spatial self-attention over the pixels of a feature map.
//!
//! Ports diffusers' `Attention` as the UNet2D blocks configure it (`_from_deprecated_attn_block`,
//! `residual_connection=True`, group norm first, `AttnProcessor2_0`), from
//! `src/diffusers/models/attention_processor.py` (v0.42.1). Weight names: `group_norm`, `to_q`,
//! `to_k`, `to_v`, `to_out.0`. Softmax is candle's composite `ops::softmax` (max, sub, exp,
//! sum, div), which has a backward pass; the fused `softmax_last_dim`/`sdpa` have none.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::layers::{GroupNorm, Linear};

/// Shape and norm settings of one [`SpatialAttention`].
#[derive(Debug, Clone, Copy)]
pub struct AttentionSpec {
    pub channels: usize,
    /// Size of one head; there are `channels / head_dim` heads.
    pub head_dim: usize,
    pub groups: usize,
    pub eps: f64,
    /// The output (residual included) is divided by this (`rescale_output_factor`).
    pub rescale_output_factor: f64,
}

/// `x + to_out(softmax(q k^T / sqrt(d)) v)` over the `H*W` positions, heads split on channels.
#[derive(Debug, Clone)]
pub struct SpatialAttention {
    group_norm: GroupNorm,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    head_dim: usize,
    rescale_output_factor: f64,
}

impl SpatialAttention {
    pub fn new(spec: &AttentionSpec, vb: VarBuilder) -> Result<Self> {
        let c = spec.channels;
        let heads = c / spec.head_dim;
        let inner = heads * spec.head_dim;
        Ok(Self {
            group_norm: GroupNorm::new(spec.groups, c, spec.eps, vb.pp("group_norm"))?,
            to_q: Linear::new(c, inner, vb.pp("to_q"))?,
            to_k: Linear::new(c, inner, vb.pp("to_k"))?,
            to_v: Linear::new(c, inner, vb.pp("to_v"))?,
            to_out: Linear::new(inner, c, vb.pp("to_out.0"))?,
            heads,
            head_dim: spec.head_dim,
            rescale_output_factor: spec.rescale_output_factor,
        })
    }

    /// `[B, C, H, W] -> [B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = h * w;
        // [B, C, H, W] -> [B, H*W, C]
        let tokens = self
            .group_norm
            .forward(x)?
            .reshape((b, c, n))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = self.split_heads(&self.to_q.forward(&tokens)?, b, n)?;
        let k = self.split_heads(&self.to_k.forward(&tokens)?, b, n)?;
        let v = self.split_heads(&self.to_v.forward(&tokens)?, b, n)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // [B, heads, N, N], in f32 whatever the weights' dtype (a no-op for f32).
        let scores = (q.matmul(&k.t()?)?.to_dtype(DType::F32)? * scale)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?.to_dtype(v.dtype())?;
        // [B, heads, N, d] -> [B, N, heads * d]
        let attended =
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, n, self.heads * self.head_dim))?;
        // [B, N, C] -> [B, C, H, W]
        let out = self
            .to_out
            .forward(&attended)?
            .transpose(1, 2)?
            .reshape((b, c, h, w))?;
        let out = (out + x)?;
        if self.rescale_output_factor == 1.0 {
            Ok(out)
        } else {
            out / self.rescale_output_factor
        }
    }

    /// `[B, N, heads * d] -> [B, heads, N, d]` (contiguous, for matmul).
    fn split_heads(&self, x: &Tensor, b: usize, n: usize) -> Result<Tensor> {
        x.reshape((b, n, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }
}
