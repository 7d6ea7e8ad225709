//! THE time convention of semaug, defined here and nowhere else.
//!
//! Rectified flow as in SD3 and Flux: `sigma` runs over [0, 1], `sigma = 1` is pure
//! noise and `sigma = 0` is data. A clean sample `x0` and a noise draw `eps` give
//!
//! ```text
//! x_sigma = (1 - sigma) x0 + sigma eps        velocity v = d x_sigma / d sigma = eps - x0
//! ```
//!
//! so generating integrates `dx/dsigma = v` from 1 down to 0 and inverting integrates
//! it back up. The user-facing [`Strength`] is the sigma at which an augmentation
//! enters the trajectory (0 leaves the image unchanged, 1 replaces it by noise). The
//! paper's flow time is `t = 1 - sigma`, and its composition level `D_i` at
//! `t = i / k` is strength `1 - i / k` ([`composition_level`]). Strength is always a
//! point in flow time, never a fraction of scheduler steps.
//!
//! Model adapters map their own timesteps onto sigma; that mapping lives with them.

use crate::error::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// `x_sigma = (1 - sigma) x0 + sigma eps`: the point at noise level `sigma` on the
/// straight path from `x0` to `eps`.
pub fn noised(x0: &Tensor, eps: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    x0.affine(1.0 - sigma, 0.0)? + eps.affine(sigma, 0.0)?
}

/// [`noised`] with one sigma per sample: `sigmas` is `[B]`, `x0` and `eps` are
/// `[B, ...]`. Training draws a different noise level for every sample.
pub fn noised_per_sample(
    x0: &Tensor,
    eps: &Tensor,
    sigmas: &Tensor,
) -> candle_core::Result<Tensor> {
    let mut shape = vec![x0.dim(0)?];
    shape.resize(x0.rank(), 1);
    let s = sigmas.to_dtype(x0.dtype())?.reshape(shape)?;
    let one_minus = s.affine(-1.0, 1.0)?;
    x0.broadcast_mul(&one_minus)? + eps.broadcast_mul(&s)?
}

/// The velocity a flow model is trained to predict on the path from `x0` to `eps`:
/// `v = eps - x0`, the same at every sigma.
pub fn velocity_target(x0: &Tensor, eps: &Tensor) -> candle_core::Result<Tensor> {
    eps - x0
}

/// The clean sample a velocity `v` at `(x, sigma)` points to: `x0 = x - sigma v`.
pub fn x0_from(x: &Tensor, v: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    x - v.affine(sigma, 0.0)?
}

/// The noise a velocity `v` at `(x, sigma)` points to: `eps = x + (1 - sigma) v`.
pub fn eps_from(x: &Tensor, v: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    x + v.affine(1.0 - sigma, 0.0)?
}

/// The paper's flow time of a noise level: `t = 1 - sigma` (t = 0 noise, t = 1 data).
pub fn flow_time(sigma: f64) -> f64 {
    1.0 - sigma
}

/// The sigma at which an augmentation enters the trajectory, validated in [0, 1].
///
/// 0 leaves the image unchanged, 1 starts from pure noise. Deserialises from a bare
/// number and rejects values outside the range.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Strength(f64);

impl Strength {
    /// Pure noise: the whole trajectory.
    pub const FULL: Strength = Strength(1.0);
    /// No augmentation.
    pub const NONE: Strength = Strength(0.0);

    /// A strength, or [`Error::StrengthOutOfRange`] unless `0 <= value <= 1`.
    pub fn new(value: f64) -> Result<Self> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Error::StrengthOutOfRange { value })
        }
    }

    /// The noise level this strength enters at.
    pub fn sigma(self) -> f64 {
        self.0
    }

    /// The paper's flow time of this strength, `1 - sigma`.
    pub fn flow_time(self) -> f64 {
        flow_time(self.0)
    }
}

impl TryFrom<f64> for Strength {
    type Error = Error;
    fn try_from(value: f64) -> Result<Self> {
        Self::new(value)
    }
}

impl From<Strength> for f64 {
    fn from(strength: Strength) -> f64 {
        strength.0
    }
}

impl std::fmt::Display for Strength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The paper's composition level `D_level` of `levels`: flow time `level / levels`,
/// that is strength `1 - level / levels` (level 0 is pure noise, level `levels` the
/// unchanged image).
pub fn composition_level(level: usize, levels: usize) -> Result<Strength> {
    if levels == 0 || level > levels {
        return Err(Error::CompositionLevel { level, levels });
    }
    // (levels - level) / levels keeps the grid points exact (0.5, 0.25, ...).
    Strength::new((levels - level) as f64 / levels as f64)
}
