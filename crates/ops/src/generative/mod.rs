//! The paper's generative augmentations, over any [`Generator`]:
//! latent perturbation ([`perturb`]), SDEdit splicing ([`splice`]), masked
//! regeneration ([`inpaint`]) and the noise-level hierarchy ([`compose`]).
//!
//! Each operator is a pure function of the generator, a batch of clean latents, one
//! condition per row, its validated config and explicit noise tensors; the caller draws
//! the noise from each output's own seed stream, so a row's result does not depend on
//! the batch it ran in.

pub mod inpaint;
pub mod perturb;
pub mod splice;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use semaug_core::{integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver};

pub use inpaint::{auto_dilation, inpaint, InpaintConfig, Region};
pub use perturb::{perturb, PerturbConfig};
pub use splice::{splice, SpliceConfig};

/// How the ODE is integrated: steps over the full [0, 1] range, solver, guidance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// Steps of the model's grid over the whole range ([`Generator::sigma_grid`]; uniform
    /// for flow models); a strength `s` runs the part of the grid below `s` (about
    /// `s * steps` steps on a uniform grid).
    pub steps: usize,
    pub solver: Solver,
    /// Classifier-free guidance scale (1 = the conditional velocity alone).
    pub guidance: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            steps: 20,
            solver: Solver::Heun,
            guidance: 1.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{name} = {value} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Engine(#[from] semaug_core::Error),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, OpError>;

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > 10_000 {
            return Err(invalid("steps", self.steps, "1..=10000"));
        }
        if !(0.0..=50.0).contains(&self.guidance) {
            return Err(invalid("guidance", self.guidance, "0..=50"));
        }
        Ok(())
    }

    fn grid<G: Generator + ?Sized>(&self, generator: &G) -> Result<SigmaGrid> {
        Ok(generator.sigma_grid(self.steps)?)
    }
}

pub(crate) fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> OpError {
    OpError::Invalid {
        name,
        value: value.to_string(),
        expected,
    }
}

/// Integrate `x` over `grid` with the generator conditioned on `conditions`.
pub(crate) fn run<G: Generator + ?Sized>(
    generator: &G,
    conditions: &[Condition],
    sampling: &Sampling,
    guidance: f64,
    x: &Tensor,
    grid: &SigmaGrid,
    hook: Option<&mut semaug_core::StepHook>,
) -> Result<Tensor> {
    let field = ConditionedField::new(generator, conditions, guidance)?;
    Ok(integrate(&field, x, grid, &sampling.solver, hook)?.x)
}
