//! Explicit sigma grids: the only place a trajectory's time points come from.
//!
//! A [`SigmaGrid`] is a strictly monotone list of sigmas in [0, 1]. Descending grids
//! generate (noise towards data), ascending grids invert; [`SigmaGrid::reversed`]
//! turns one into the other, so inversion is the generation loop run backwards.
//! SDEdit-style operations start part-way with [`SigmaGrid::truncated`]. The grid is
//! plain data: no solver keeps a step index of its own.

use crate::error::{Error, Result};
use crate::time::Strength;

/// Two sigmas closer than this are the same point: grid arithmetic such as
/// `1 - 7/10` must land on a strength of 0.3, not a hair beside it.
const SAME_SIGMA: f64 = 1e-9;

/// A strictly monotone list of sigmas in [0, 1]; `steps()` intervals between them.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaGrid {
    sigmas: Vec<f64>,
}

impl SigmaGrid {
    /// A grid from explicit sigmas: at least one, each in [0, 1], strictly decreasing
    /// or strictly increasing. A single sigma is a grid of zero steps.
    pub fn new(sigmas: Vec<f64>) -> Result<Self> {
        validate(&sigmas)?;
        Ok(Self { sigmas })
    }

    /// `steps` equal steps from pure noise to data: `1, 1 - 1/steps, ..., 0`.
    pub fn uniform(steps: usize) -> Result<Self> {
        check_steps(steps)?;
        // (steps - i) / steps rounds each point once, so 0.3, 0.6, ... are exact.
        let sigmas = (0..=steps)
            .map(|i| (steps - i) as f64 / steps as f64)
            .collect();
        Ok(Self { sigmas })
    }

    /// The uniform grid bent by SD3's timestep shift `shift t / (1 + (shift - 1) t)`:
    /// `shift > 1` spends more steps at high noise, `shift = 1` is [`Self::uniform`].
    pub fn shifted(steps: usize, shift: f64) -> Result<Self> {
        if !(shift.is_finite() && shift > 0.0) {
            return Err(Error::InvalidParameter {
                name: "shift",
                value: shift,
                expected: "a positive finite number (1 = no shift)",
            });
        }
        let uniform = Self::uniform(steps)?;
        // Written as shift t / (shift t + 1 - t) so that t = 1 and t = 0 map exactly.
        let sigmas = uniform
            .sigmas
            .iter()
            .map(|&t| shift * t / (shift * t + (1.0 - t)))
            .collect();
        Ok(Self { sigmas })
    }

    /// The part of this grid at or below `strength`, with `strength` itself as its
    /// noisy end; the direction is kept.
    ///
    /// Rule: keep every grid sigma strictly below `strength` and put `strength` in
    /// front (a grid sigma within 1e-9 of it counts as equal). On a strength that lies
    /// on the grid this is exactly the grid's tail: `uniform(10)` truncated at 0.6 is
    /// `0.6, 0.5, ..., 0` (6 steps). Off the grid the first step is the shorter one:
    /// `uniform(10)` at 0.65 is `0.65, 0.6, ..., 0` (7 steps). Strength 0 gives the
    /// zero-step grid `[0]`, strength 1 on a grid from 1 the whole grid. Strength is a
    /// point in flow time, never a fraction of steps.
    pub fn truncated(&self, strength: Strength) -> Result<Self> {
        let cut = strength.sigma();
        let noisiest = self.first().max(self.last());
        if noisiest < cut - SAME_SIGMA {
            return Err(Error::GridBelowStrength {
                strength: cut,
                noisiest,
            });
        }
        let below = self.descending().filter(|&sigma| sigma < cut - SAME_SIGMA);
        let mut sigmas: Vec<f64> = std::iter::once(cut).chain(below).collect();
        if self.is_ascending() {
            sigmas.reverse();
        }
        Ok(Self { sigmas })
    }

    /// The inversion grid for a partial pull-back up to `strength`: this grid
    /// truncated at `strength`, ascending. Regenerating over its reverse retraces
    /// the same sigmas.
    pub fn inversion_to(&self, strength: Strength) -> Result<Self> {
        let truncated = self.truncated(strength)?;
        Ok(if truncated.is_ascending() {
            truncated
        } else {
            truncated.reversed()
        })
    }

    /// The same sigmas in the opposite order (generate <-> invert).
    pub fn reversed(&self) -> Self {
        let mut sigmas = self.sigmas.clone();
        sigmas.reverse();
        Self { sigmas }
    }

    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The number of intervals, i.e. solver steps.
    pub fn steps(&self) -> usize {
        self.sigmas.len() - 1
    }

    /// The sigma the trajectory starts at.
    pub fn first(&self) -> f64 {
        self.sigmas[0]
    }

    /// The sigma the trajectory ends at.
    pub fn last(&self) -> f64 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// True when the grid runs towards noise (inversion).
    pub fn is_ascending(&self) -> bool {
        self.sigmas.len() > 1 && self.sigmas[1] > self.sigmas[0]
    }

    /// The `(sigma, sigma_next)` pairs in trajectory order.
    pub fn intervals(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.sigmas.windows(2).map(|pair| (pair[0], pair[1]))
    }

    fn descending(&self) -> impl Iterator<Item = f64> + '_ {
        let ascending = self.is_ascending();
        let n = self.sigmas.len();
        (0..n).map(move |i| self.sigmas[if ascending { n - 1 - i } else { i }])
    }
}

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::InvalidParameter {
            name: "steps",
            value: 0.0,
            expected: "at least 1",
        });
    }
    Ok(())
}

fn validate(sigmas: &[f64]) -> Result<()> {
    if sigmas.is_empty() {
        return Err(Error::EmptyGrid);
    }
    if let Some((index, &value)) = sigmas
        .iter()
        .enumerate()
        .find(|(_, s)| !(0.0..=1.0).contains(*s))
    {
        return Err(Error::GridSigmaOutOfRange { index, value });
    }
    let descending = sigmas.len() < 2 || sigmas[1] < sigmas[0];
    for (index, pair) in sigmas.windows(2).enumerate() {
        let monotone = if descending {
            pair[1] < pair[0]
        } else {
            pair[1] > pair[0]
        };
        if !monotone {
            return Err(Error::GridNotMonotone {
                index: index + 1,
                previous: pair[0],
                value: pair[1],
            });
        }
    }
    Ok(())
}
