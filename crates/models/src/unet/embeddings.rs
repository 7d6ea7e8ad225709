//! Time conditioning: the sinusoidal timestep features and the time MLP.
//!
//! Ports `get_timestep_embedding`, `Timesteps` and `TimestepEmbedding` from diffusers
//! `src/diffusers/models/embeddings.py` (v0.42.1). The frequencies are computed in float32
//! in the same order of operations as PyTorch (`exp(-ln(10000) * i / (half - shift))`), since
//! at t ~ 1000 one ulp in a frequency moves the sine by more than the golden tolerance.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::layers::Linear;

/// diffusers `Timesteps`: `t [B] -> [B, dim]` sinusoidal features. Holds no weights.
#[derive(Debug, Clone)]
pub struct SinusoidalTimeProj {
    /// `[1, dim / 2]`.
    freqs: Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
}

impl SinusoidalTimeProj {
    pub fn new(
        dim: usize,
        flip_sin_to_cos: bool,
        freq_shift: f64,
        device: &Device,
    ) -> Result<Self> {
        let half = dim / 2;
        // PyTorch: (-ln(max_period) [as f32] * arange(half) [f32]) / (half - shift) [as f32].
        let scale = -(10000f64.ln() as f32);
        let denom = (half as f64 - freq_shift) as f32;
        let freqs: Vec<f32> = (0..half)
            .map(|i| ((scale * i as f32) / denom).exp())
            .collect();
        Ok(Self {
            freqs: Tensor::from_vec(freqs, (1, half), device)?,
            dim,
            flip_sin_to_cos,
        })
    }

    /// `t [B]` (any float dtype, computed in f32) `-> [B, dim]`: `[cos | sin]` when
    /// `flip_sin_to_cos`, else `[sin | cos]`; a zero column is appended for odd `dim`.
    pub fn forward(&self, t: &Tensor) -> Result<Tensor> {
        let b = t.dim(0)?;
        let args = t
            .to_dtype(DType::F32)?
            .reshape((b, 1))?
            .broadcast_mul(&self.freqs)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        let features = if self.flip_sin_to_cos {
            Tensor::cat(&[&cos, &sin], D::Minus1)?
        } else {
            Tensor::cat(&[&sin, &cos], D::Minus1)?
        };
        if self.dim % 2 == 1 {
            features.pad_with_zeros(D::Minus1, 0, 1)
        } else {
            Ok(features)
        }
    }
}

/// diffusers `TimestepEmbedding`: `linear_1 -> SiLU -> linear_2`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(in_dim: usize, embed_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: Linear::new(in_dim, embed_dim, vb.pp("linear_1"))?,
            linear_2: Linear::new(embed_dim, embed_dim, vb.pp("linear_2"))?,
        })
    }

    /// `[B, in_dim] -> [B, embed_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}
