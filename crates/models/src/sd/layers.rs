//! The transformer primitives of the SD components that the UNet module does not have:
//! a linear layer with an optional bias, layer norm, multi-head attention and the GELU
//! variants. Convolutions and group norms are the UNet module's ([`crate::unet::layers`]).
//!
//! Everything is a composite of candle ops that have a backward pass: candle's fused
//! `layer_norm`, `softmax_last_dim` and `sdpa` have none, and textual inversion trains a
//! token embedding through the CLIP text encoder, so a fused op would silently cut the
//! gradient (see the crate's design notes).
//!
//! Half-precision models (f16 / bf16 weights) compute layer-norm statistics and softmax in
//! f32 and give the result back in their own dtype, as PyTorch's half kernels do; in an f32
//! model every such cast is a no-op, so its numbers are unchanged.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `torch.nn.Linear(in, out, bias)`: weight `[out, in]`, optional bias `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((out_features, in_features), "weight")?,
            bias: Some(vb.get(out_features, "bias")?),
        })
    }

    pub fn no_bias(in_features: usize, out_features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((out_features, in_features), "weight")?,
            bias: None,
        })
    }
}

impl Module for Linear {
    /// `[..., in] -> [..., out]`: one gemm over all leading positions.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&in_features, lead)) = dims.split_last() else {
            candle_core::bail!("linear: a scalar input has no feature axis")
        };
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, in_features))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = lead.to_vec();
        out_dims.push(self.weight.dim(0)?);
        y.reshape(out_dims)
    }
}

/// `torch.nn.LayerNorm(dim, eps)` over the last axis (biased variance, affine), composite.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    /// `[..., dim] -> [..., dim]`, computed in f32 (see the module docs).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        in_f32(x, |x| {
            let mean = x.mean_keepdim(D::Minus1)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            centered
                .broadcast_div(&(var + self.eps)?.sqrt()?)?
                .broadcast_mul(&self.weight.to_dtype(DType::F32)?)?
                .broadcast_add(&self.bias.to_dtype(DType::F32)?)
        })
    }
}

/// `f` applied to `x` in f32, the result cast back to `x`'s dtype (no-ops for f32 `x`).
pub(crate) fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())
}

/// The activations the SD components use, by their config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)` (OpenAI CLIP, transformers `quick_gelu`).
    QuickGelu,
    /// The exact erf GELU (`torch.nn.functional.gelu`, transformers `gelu`).
    GeluErf,
    /// The tanh approximation (transformers `gelu_new` / `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Activation {
    /// The activation a transformers `hidden_act` string names, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            _ => None,
        }
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Self::GeluErf => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
        }
    }
}

/// `softmax(q k^T * scale + mask) v` per head, `q [B, H, Nq, d]`, `k, v [B, H, Nk, d]`,
/// optional additive `mask` broadcastable to `[B, H, Nq, Nk]` -> `[B, H, Nq, d]`.
/// The scores, mask and softmax are f32 whatever the model's dtype (see the module docs).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let scores = (q.matmul(&k.t()?)?.to_dtype(DType::F32)? * scale)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m.to_dtype(DType::F32)?)?,
        None => scores,
    };
    candle_nn::ops::softmax(&scores, D::Minus1)?
        .to_dtype(v.dtype())?
        .matmul(v)
}

/// `[B, N, heads * d] -> [B, heads, N, d]` (contiguous, for matmul).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, inner) = x.dims3()?;
    x.reshape((b, n, heads, inner / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `[B, heads, N, d] -> [B, N, heads * d]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, heads, n, d) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, n, heads * d))
}
