//! Invert-then-generate round trips: how exactly a generator and solver bring an image
//! back from noise. The figure of merit for inversion-based augmentation (`perturb` with
//! `delta = 0` is exactly this round trip).

use candle_core::{Tensor, D};
use serde::Serialize;

use semaug_core::{integrate, Condition, ConditionedField, Generator, Solver};

use crate::generative::Result;

/// The round-trip error of one (solver, steps) setting over a set of images.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrip {
    pub solver: String,
    pub steps: usize,
    /// Velocity evaluations per direction.
    pub nfe: usize,
    pub images: usize,
    /// Mean squared error in [-1, 1] pixel units.
    pub mse: f64,
    /// Mean over images of `10 log10(4 / mse_i)` (peak-to-peak 2 in [-1, 1]).
    pub mean_psnr_db: f64,
}

/// Invert `x0` to sigma = 1 on the model's reversed grid, regenerate on the forward grid
/// (guidance 1 both ways), and compare with `x0` in pixel space.
pub fn round_trip<G: Generator + ?Sized>(
    generator: &G,
    images: &Tensor,
    conditions: &[Condition],
    solver: &Solver,
    steps: usize,
) -> Result<(Vec<f64>, usize)> {
    let field = ConditionedField::new(generator, conditions, 1.0)?;
    let grid = generator.sigma_grid(steps)?;
    let x0 = generator.encode(images)?;
    let noise = integrate(&field, &x0, &grid.reversed(), solver, None)?;
    let back = integrate(&field, &noise.x, &grid, solver, None)?;
    let restored = generator.decode(&back.x)?;
    let per_image = (restored - images)?
        .sqr()?
        .flatten_from(1)?
        .mean(D::Minus1)?;
    Ok((
        per_image
            .to_dtype(candle_core::DType::F64)?
            .to_vec1::<f64>()?,
        noise.nfe,
    ))
}

/// Summarise per-image MSEs.
pub fn summarize(solver: &Solver, steps: usize, nfe: usize, mses: &[f64]) -> RoundTrip {
    let n = mses.len().max(1) as f64;
    let psnr = |m: f64| 10.0 * (4.0 / m.max(1e-20)).log10();
    RoundTrip {
        solver: solver.to_string(),
        steps,
        nfe,
        images: mses.len(),
        mse: mses.iter().sum::<f64>() / n,
        mean_psnr_db: mses.iter().map(|m| psnr(*m)).sum::<f64>() / n,
    }
}
