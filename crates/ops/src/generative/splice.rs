//! SDEdit splicing (paper section 3.2): noise the image to `strength` with fresh noise
//! and integrate back down, conditioned on its class (or a learned concept) with
//! classifier-free guidance.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use semaug_core::{time, Condition, Generator, Strength};

use super::{run, Result, Sampling};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpliceConfig {
    pub strength: Strength,
    pub sampling: Sampling,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        Self {
            strength: Strength::new(0.5).unwrap_or(Strength::FULL),
            sampling: Sampling {
                guidance: 2.0,
                ..Sampling::default()
            },
        }
    }
}

/// Splice clean latents `x0 [B, ...]` at `config.strength` with `noise ~ N(0, I)`.
pub fn splice<G: Generator + ?Sized>(
    generator: &G,
    x0: &Tensor,
    conditions: &[Condition],
    config: &SpliceConfig,
    noise: &Tensor,
) -> Result<Tensor> {
    config.sampling.validate()?;
    let s = config.strength.sigma();
    let grid = config
        .sampling
        .grid(generator)?
        .truncated(config.strength)?;
    let start = time::noised(x0, noise, s)?;
    let guidance = config.sampling.guidance;
    run(
        generator,
        conditions,
        &config.sampling,
        guidance,
        &start,
        &grid,
        None,
    )
}
