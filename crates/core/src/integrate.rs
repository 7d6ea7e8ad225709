//! The one integration loop: a solver walked over a sigma grid.
//!
//! Every generative operation is this loop with a different grid or hook:
//! generate runs a descending grid from noise, invert the same grid reversed, splice a
//! grid truncated at the strength, inpaint adds a hook that re-imposes the known
//! region after each step. The loop's state is its arguments and locals: nothing
//! persists between calls.

use crate::error::{Error, Result};
use crate::field::VelocityField;
use crate::grid::SigmaGrid;
use crate::solver::Solver;
use candle_core::Tensor;

/// A per-step callback: `(step index, sigma reached, x) -> x to continue from`.
/// It runs after every grid step, the last included.
pub type StepHook<'a> = dyn FnMut(usize, f64, &Tensor) -> candle_core::Result<Tensor> + 'a;

/// The end of a trajectory and what it cost.
#[derive(Debug, Clone)]
pub struct Integrated {
    /// The state at the grid's last sigma.
    pub x: Tensor,
    /// Field evaluations spent (rejected adaptive attempts included).
    pub nfe: usize,
    /// Grid steps taken (`grid.steps()`).
    pub steps: usize,
    /// Solver steps accepted: `steps` for fixed-step solvers, the adaptive
    /// sub-steps for Dopri5.
    pub accepted: usize,
    /// Adaptive attempts rejected by error control; 0 for fixed-step solvers.
    pub rejected: usize,
}

/// Integrates `dx/dsigma = field(x, sigma)` from `x` at `grid.first()` through every
/// grid sigma to `grid.last()`, calling `hook` after each step.
///
/// Descending grids generate, ascending grids invert. Fixed-step solvers take one
/// step per interval; Dopri5 takes adaptive sub-steps inside each interval and still
/// lands on (and hooks at) every grid sigma. A zero-step grid returns `x` unchanged.
pub fn integrate<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    grid: &SigmaGrid,
    solver: &Solver,
    mut hook: Option<&mut StepHook<'_>>,
) -> Result<Integrated> {
    let mut out = Integrated {
        x: x.clone(),
        nfe: 0,
        steps: grid.steps(),
        accepted: 0,
        rejected: 0,
    };
    // Dopri5 carries its step-size proposal from one interval to the next;
    // fixed-step rules ignore it.
    let mut adaptive_step = None;
    for (step, (sigma, sigma_next)) in grid.intervals().enumerate() {
        let run = solver
            .interval(field, &out.x, sigma, sigma_next, adaptive_step)
            .map_err(|error| match error {
                Error::Tensor(source) => Error::Step {
                    step,
                    from: sigma,
                    to: sigma_next,
                    source,
                },
                other => other,
            })?;
        adaptive_step = Some(run.next_step);
        out.nfe += run.nfe;
        out.accepted += run.accepted;
        out.rejected += run.rejected;
        out.x = run.x;
        if let Some(hook) = hook.as_deref_mut() {
            out.x = hook(step, sigma_next, &out.x).map_err(|source| Error::Hook {
                step,
                sigma: sigma_next,
                source,
            })?;
        }
    }
    Ok(out)
}
