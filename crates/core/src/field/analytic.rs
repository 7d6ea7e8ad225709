//! Velocity fields whose flows are known in closed form: test oracles for solvers and
//! for the operators built on them (flow_matching's analytic-oracle tests).
//!
//! [`Gaussian`] and [`TwoGaussians`] are the exact marginal velocities
//! `E[eps - x0 | x_sigma = x]` of real data distributions under [`crate::time`], so
//! generating from noise with them yields samples of that data. The fields with an
//! [`ExactFlow::transport`] also give the exact answer of any integration.

use super::VelocityField;
use crate::error::{Error, Result as CoreResult};
use candle_core::{Result, Tensor};

/// A field whose ODE `dx/dsigma = v(x, sigma)` has a closed-form solution.
pub trait ExactFlow: VelocityField {
    /// The exact solution at sigma `to` of the trajectory through `x` at sigma `from`.
    fn transport(&self, x: &Tensor, from: f64, to: f64) -> Result<Tensor>;
}

/// `v(x, sigma) = c`, broadcast to the shape of `x`: every solver is exact on it.
#[derive(Debug, Clone)]
pub struct Constant {
    velocity: Tensor,
}

impl Constant {
    /// `velocity` must broadcast to the shapes of the `x` it is evaluated at.
    pub fn new(velocity: Tensor) -> Self {
        Self { velocity }
    }

    fn velocity_like(&self, x: &Tensor) -> Result<Tensor> {
        self.velocity
            .to_device(x.device())?
            .to_dtype(x.dtype())?
            .broadcast_as(x.shape())
    }
}

impl VelocityField for Constant {
    fn velocity(&self, x: &Tensor, _sigma: f64) -> Result<Tensor> {
        self.velocity_like(x)
    }
}

impl ExactFlow for Constant {
    fn transport(&self, x: &Tensor, from: f64, to: f64) -> Result<Tensor> {
        x + self.velocity_like(x)?.affine(to - from, 0.0)?
    }
}

/// `v(x, sigma) = scale x + offset`: exponential solutions, the classic test of a
/// solver's order of accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub scale: f64,
    pub offset: f64,
}

impl VelocityField for Affine {
    fn velocity(&self, x: &Tensor, _sigma: f64) -> Result<Tensor> {
        x.affine(self.scale, self.offset)
    }
}

impl ExactFlow for Affine {
    /// `x(to) = x e^{a d} + b d (e^{a d} - 1) / (a d)` with `d = to - from`.
    fn transport(&self, x: &Tensor, from: f64, to: f64) -> Result<Tensor> {
        let span = to - from;
        let z = self.scale * span;
        // expm1(z) / z, written so that scale = 0 (a constant field) needs no branch.
        let growth = if z == 0.0 { 1.0 } else { z.exp_m1() / z };
        x.affine(z.exp(), self.offset * span * growth)
    }
}

/// The exact velocity for data `x0 ~ N(mean, std^2 I)`: affine in `x`, nonlinear in
/// sigma. A small `std` approximates a single data point while staying finite at
/// sigma = 0.
///
/// Along the flow `x_sigma = m(sigma) + s(sigma) z` with `m = (1 - sigma) mean` and
/// `s^2 = (1 - sigma)^2 std^2 + sigma^2`, so `v = m' + (s'/s)(x - m)`.
#[derive(Debug, Clone)]
pub struct Gaussian {
    mean: Tensor,
    std: f64,
}

impl Gaussian {
    /// `mean` must broadcast to the shape of `x`; `std` must be positive and finite.
    pub fn new(mean: Tensor, std: f64) -> CoreResult<Self> {
        if !(std.is_finite() && std > 0.0) {
            return Err(Error::InvalidParameter {
                name: "std",
                value: std,
                expected: "a positive finite number",
            });
        }
        Ok(Self { mean, std })
    }

    /// The marginal's standard deviation `s(sigma)`.
    fn spread(&self, sigma: f64) -> f64 {
        ((1.0 - sigma).powi(2) * self.std.powi(2) + sigma.powi(2)).sqrt()
    }

    /// `s'(sigma) / s(sigma)`.
    fn log_spread_rate(&self, sigma: f64) -> f64 {
        (sigma - (1.0 - sigma) * self.std.powi(2)) / self.spread(sigma).powi(2)
    }

    /// `scale x + mean_coef * mean`.
    fn combine(&self, x: &Tensor, scale: f64, mean_coef: f64) -> Result<Tensor> {
        let mean = self.mean.to_device(x.device())?.to_dtype(x.dtype())?;
        x.affine(scale, 0.0)?
            .broadcast_add(&mean.affine(mean_coef, 0.0)?)
    }
}

impl VelocityField for Gaussian {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let rate = self.log_spread_rate(sigma);
        self.combine(x, rate, -(1.0 + rate * (1.0 - sigma)))
    }
}

impl ExactFlow for Gaussian {
    fn transport(&self, x: &Tensor, from: f64, to: f64) -> Result<Tensor> {
        let ratio = self.spread(to) / self.spread(from);
        self.combine(x, ratio, (1.0 - to) - ratio * (1.0 - from))
    }
}

/// The exact velocity for data whose every element is drawn from the equal mixture of
/// `N(-separation, std^2)` and `N(+separation, std^2)`: a field nonlinear in `x`
/// (a `tanh` of it) with no closed-form flow, for round-trip and sampling tests.
///
/// Given the component, the data is Gaussian (see [`Gaussian`]); averaging over the
/// posterior of the component gives
/// `v = k x - (1 + k (1 - sigma)) a tanh(a (1 - sigma) x / s^2)` with
/// `k = (sigma - (1 - sigma) std^2) / s^2` and `s^2 = (1 - sigma)^2 std^2 + sigma^2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoGaussians {
    separation: f64,
    std: f64,
}

impl TwoGaussians {
    /// Both parameters must be positive and finite.
    pub fn new(separation: f64, std: f64) -> CoreResult<Self> {
        for (name, value) in [("separation", separation), ("std", std)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::InvalidParameter {
                    name,
                    value,
                    expected: "a positive finite number",
                });
            }
        }
        Ok(Self { separation, std })
    }
}

impl VelocityField for TwoGaussians {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        let a = self.separation;
        let spread2 = (1.0 - sigma).powi(2) * self.std.powi(2) + sigma.powi(2);
        let rate = (sigma - (1.0 - sigma) * self.std.powi(2)) / spread2;
        let posterior_sign = x.affine(a * (1.0 - sigma) / spread2, 0.0)?.tanh()?;
        x.affine(rate, 0.0)? - posterior_sign.affine((1.0 + rate * (1.0 - sigma)) * a, 0.0)?
    }
}
