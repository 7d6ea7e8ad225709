//! Latent perturbation (paper section 3.1): invert the image to noise with the ODE run
//! backward, add `delta * N(0, I)`, run the ODE forward again.
//!
//! By default the inverted latent is perturbed on its own norm shell: after adding the
//! noise each row is rescaled to the norm it had, so the regeneration starts from a
//! point as typical of the noise distribution as the inversion was (`renormalize`).
//! `delta = 0` reproduces the input within the solver's round-trip error.

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use semaug_core::{Condition, Generator, Strength};

use super::{invalid, run, Result, Sampling};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerturbConfig {
    /// Noise scale added to the inverted latent.
    pub delta: f64,
    /// The sigma the image is inverted to (1 = all the way to noise).
    pub invert_to: Strength,
    /// Rescale each perturbed row to the norm of the inverted latent.
    pub renormalize: bool,
    pub sampling: Sampling,
}

impl Default for PerturbConfig {
    fn default() -> Self {
        Self {
            delta: 0.5,
            invert_to: Strength::FULL,
            renormalize: true,
            sampling: Sampling::default(),
        }
    }
}

impl PerturbConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=10.0).contains(&self.delta) {
            return Err(invalid("delta", self.delta, "0..=10"));
        }
        self.sampling.validate()
    }
}

/// Perturb clean latents `x0 [B, ...]`; `noise` is `N(0, I)` of the same shape.
pub fn perturb<G: Generator + ?Sized>(
    generator: &G,
    x0: &Tensor,
    conditions: &[Condition],
    config: &PerturbConfig,
    noise: &Tensor,
) -> Result<Tensor> {
    config.validate()?;
    let grid = config.sampling.grid(generator)?;
    let up = grid.inversion_to(config.invert_to)?;
    let down = grid.truncated(config.invert_to)?;
    // Inversion uses the conditional field alone: guidance is not invertible.
    let z = run(generator, conditions, &config.sampling, 1.0, x0, &up, None)?;
    let moved = (&z + (noise * config.delta)?)?;
    let start = if config.renormalize && config.delta > 0.0 {
        moved.broadcast_mul(&(row_norm(&z)? / row_norm(&moved)?)?)?
    } else {
        moved
    };
    let guidance = config.sampling.guidance;
    run(
        generator,
        conditions,
        &config.sampling,
        guidance,
        &start,
        &down,
        None,
    )
}

/// The L2 norm of each row, shaped `[B, 1, 1, ...]` for broadcasting.
fn row_norm(x: &Tensor) -> candle_core::Result<Tensor> {
    let b = x.dim(0)?;
    let mut shape = vec![b];
    shape.resize(x.rank(), 1);
    x.flatten_from(1)?
        .sqr()?
        .sum(D::Minus1)?
        .sqrt()?
        .reshape(shape)
}
