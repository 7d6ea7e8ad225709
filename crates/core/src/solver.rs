//! ODE step rules for `dx/dsigma = v(x, sigma)`: small stateless functions of
//! `(field, x, sigma, sigma_next)`, one per method, in the manner of k-diffusion's
//! `sampling.py`. The step `h = sigma_next - sigma` is negative when generating and
//! positive when inverting; no rule cares which.
//!
//! Fixed-step rules: [`euler_step`] (order 1), [`heun_step`] and [`midpoint_step`]
//! (order 2), [`rk4_step`] (order 4). [`dopri5`] is the adaptive Dormand-Prince 5(4)
//! pair with error control over one interval. [`Solver`] names a method for configs.

use crate::error::{Error, Result};
use crate::field::VelocityField;
use candle_core::Tensor;
use std::fmt;
use std::str::FromStr;

/// `x + h (sum of weight * k)`: the update every rule is built from.
fn advance(x: &Tensor, h: f64, terms: &[(f64, &Tensor)]) -> candle_core::Result<Tensor> {
    let mut out = x.clone();
    for &(weight, k) in terms {
        if weight != 0.0 {
            out = (out + k.affine(h * weight, 0.0)?)?;
        }
    }
    Ok(out)
}

/// Forward Euler: one evaluation, first order.
pub fn euler_step<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    sigma: f64,
    sigma_next: f64,
) -> candle_core::Result<Tensor> {
    let k1 = field.velocity(x, sigma)?;
    advance(x, sigma_next - sigma, &[(1.0, &k1)])
}

/// Heun's method (explicit trapezoid): Euler predictor, then the mean of the slopes at
/// both ends. Two evaluations, second order; evaluates the field at `sigma_next`.
pub fn heun_step<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    sigma: f64,
    sigma_next: f64,
) -> candle_core::Result<Tensor> {
    let h = sigma_next - sigma;
    let k1 = field.velocity(x, sigma)?;
    let predicted = advance(x, h, &[(1.0, &k1)])?;
    let k2 = field.velocity(&predicted, sigma_next)?;
    advance(x, h, &[(0.5, &k1), (0.5, &k2)])
}

/// The explicit midpoint rule: the slope at a half Euler step. Two evaluations,
/// second order; never evaluates the field at `sigma_next`.
pub fn midpoint_step<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    sigma: f64,
    sigma_next: f64,
) -> candle_core::Result<Tensor> {
    let h = sigma_next - sigma;
    let k1 = field.velocity(x, sigma)?;
    let half = advance(x, h, &[(0.5, &k1)])?;
    let k2 = field.velocity(&half, sigma + 0.5 * h)?;
    advance(x, h, &[(1.0, &k2)])
}

/// The classic fourth-order Runge-Kutta rule. Four evaluations.
pub fn rk4_step<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    sigma: f64,
    sigma_next: f64,
) -> candle_core::Result<Tensor> {
    let h = sigma_next - sigma;
    let k1 = field.velocity(x, sigma)?;
    let k2 = field.velocity(&advance(x, h, &[(0.5, &k1)])?, sigma + 0.5 * h)?;
    let k3 = field.velocity(&advance(x, h, &[(0.5, &k2)])?, sigma + 0.5 * h)?;
    let k4 = field.velocity(&advance(x, h, &[(1.0, &k3)])?, sigma_next)?;
    let sixth = 1.0 / 6.0;
    advance(
        x,
        h,
        &[
            (sixth, &k1),
            (2.0 * sixth, &k2),
            (2.0 * sixth, &k3),
            (sixth, &k4),
        ],
    )
}

/// Error tolerances of the adaptive solver: a step is accepted when the estimated
/// local error is at most `atol + rtol * |x|`, in root-mean-square over elements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    /// 1e-5 for both: well above f32 rounding, far below visible error in an image.
    fn default() -> Self {
        Self {
            rtol: 1e-5,
            atol: 1e-5,
        }
    }
}

impl Tolerance {
    /// Both tolerances must be positive and finite.
    pub fn new(rtol: f64, atol: f64) -> Result<Self> {
        for (name, value) in [("rtol", rtol), ("atol", atol)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::InvalidParameter {
                    name,
                    value,
                    expected: "a positive finite tolerance",
                });
            }
        }
        Ok(Self { rtol, atol })
    }
}

/// What one grid interval produced and cost.
#[derive(Debug, Clone)]
pub struct Stepped {
    pub x: Tensor,
    /// Field evaluations spent, rejected attempts included.
    pub nfe: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// The step size the controller proposes next (magnitude), to seed the next
    /// interval.
    pub next_step: f64,
}

/// A guard against a controller that never reaches the end of an interval.
pub const MAX_ADAPTIVE_STEPS: usize = 10_000;

/// Below this step size sigma itself stops resolving the step (f64 near 1).
const MIN_STEP: f64 = 1e-12;

// Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", Table 2.
const C: [f64; 6] = [1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 6] = [
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    // The fifth-order weights: the seventh stage is the next step's first (FSAL).
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// Fifth-order minus fourth-order weights: the local error estimate.
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// One Dormand-Prince attempt from `(x, sigma)` with first stage `k1`:
/// the fifth-order result, its velocity (the next `k1`) and the error vector.
fn dopri5_attempt<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    k1: &Tensor,
    sigma: f64,
    h: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let mut stages = vec![k1.clone()];
    let mut stage_x = x.clone();
    for (row, c) in A.iter().zip(C) {
        let terms: Vec<(f64, &Tensor)> = row.iter().copied().zip(stages.iter()).collect();
        stage_x = advance(x, h, &terms)?;
        stages.push(field.velocity(&stage_x, sigma + c * h)?);
    }
    // The last stage point is the fifth-order solution, its velocity the next k1.
    let terms: Vec<(f64, &Tensor)> = E.iter().copied().zip(stages.iter()).collect();
    let error = advance(&x.zeros_like()?, h, &terms)?;
    let k_next = stages.swap_remove(6);
    Ok((stage_x, k_next, error))
}

/// Root-mean-square of `error / (atol + rtol * max(|x|, |x_new|))`.
fn error_norm(
    error: &Tensor,
    x: &Tensor,
    x_new: &Tensor,
    tol: &Tolerance,
) -> candle_core::Result<f64> {
    let scale = x
        .abs()?
        .maximum(&x_new.abs()?)?
        .affine(tol.rtol, tol.atol)?;
    let ratio = (error / scale)?.to_dtype(candle_core::DType::F64)?;
    Ok(ratio.sqr()?.mean_all()?.to_scalar::<f64>()?.sqrt())
}

/// The standard step-size controller: `0.9 err^(-1/5)`, within [0.2, 10], never
/// growing after a rejection.
fn step_factor(error: f64, accepted: bool) -> f64 {
    let factor = if !error.is_finite() {
        0.2
    } else if error == 0.0 {
        10.0
    } else {
        (0.9 * error.powf(-0.2)).clamp(0.2, 10.0)
    };
    if accepted {
        factor
    } else {
        factor.min(1.0)
    }
}

/// Adaptive Dormand-Prince 5(4) from `sigma` to `sigma_next`, landing exactly on
/// `sigma_next`. `first_step` is the magnitude of the first trial step (the whole
/// interval when `None`); errors when the step underflows or exceeds
/// [`MAX_ADAPTIVE_STEPS`].
pub fn dopri5<F: VelocityField + ?Sized>(
    field: &F,
    x: &Tensor,
    sigma: f64,
    sigma_next: f64,
    tol: &Tolerance,
    first_step: Option<f64>,
) -> Result<Stepped> {
    let span = sigma_next - sigma;
    let direction = span.signum();
    let mut step = first_step
        .filter(|step| step.is_finite() && *step > 0.0)
        .unwrap_or(span.abs())
        .min(span.abs());
    let mut out = Stepped {
        x: x.clone(),
        nfe: 0,
        accepted: 0,
        rejected: 0,
        next_step: step,
    };
    if span == 0.0 {
        return Ok(out);
    }
    let mut k1 = field.velocity(x, sigma)?;
    out.nfe = 1;
    let mut at = sigma;
    while at != sigma_next {
        if out.accepted + out.rejected >= MAX_ADAPTIVE_STEPS {
            return Err(Error::TooManySteps {
                from: sigma,
                to: sigma_next,
                max_steps: MAX_ADAPTIVE_STEPS,
            });
        }
        let remaining = (sigma_next - at).abs();
        let last = step >= remaining * (1.0 - 1e-9);
        let h = direction * if last { remaining } else { step };
        let (x_new, k_new, error) = dopri5_attempt(field, &out.x, &k1, at, h)?;
        out.nfe += 6;
        let err = error_norm(&error, &out.x, &x_new, tol)?;
        let accepted = err <= 1.0;
        if accepted {
            at = if last { sigma_next } else { at + h };
            out.x = x_new;
            k1 = k_new;
            out.accepted += 1;
        } else {
            out.rejected += 1;
        }
        step = h.abs() * step_factor(err, accepted);
        if at != sigma_next && step < MIN_STEP {
            return Err(Error::StepUnderflow { sigma: at, step });
        }
    }
    out.next_step = step;
    Ok(out)
}

/// An integration method by name: `euler`, `heun`, `midpoint`, `rk4`, `dopri5`
/// (or `dopri5:rtol=1e-4,atol=1e-6`). Serialised as that string.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Solver {
    #[default]
    Euler,
    Heun,
    Midpoint,
    Rk4,
    Dopri5(Tolerance),
}

impl Solver {
    /// Field evaluations per grid step; `None` for the adaptive solver.
    pub fn nfe_per_step(&self) -> Option<usize> {
        match self {
            Solver::Euler => Some(1),
            Solver::Heun | Solver::Midpoint => Some(2),
            Solver::Rk4 => Some(4),
            Solver::Dopri5(_) => None,
        }
    }

    /// The global order of accuracy.
    pub fn order(&self) -> usize {
        match self {
            Solver::Euler => 1,
            Solver::Heun | Solver::Midpoint => 2,
            Solver::Rk4 => 4,
            Solver::Dopri5(_) => 5,
        }
    }

    /// One grid interval from `sigma` to `sigma_next` with this method: a single step
    /// for the fixed rules, adaptive sub-steps (the first of magnitude `first_step`)
    /// for Dopri5.
    pub fn interval<F: VelocityField + ?Sized>(
        &self,
        field: &F,
        x: &Tensor,
        sigma: f64,
        sigma_next: f64,
        first_step: Option<f64>,
    ) -> Result<Stepped> {
        type Rule<F> = fn(&F, &Tensor, f64, f64) -> candle_core::Result<Tensor>;
        let (rule, nfe): (Rule<F>, usize) = match self {
            Solver::Euler => (euler_step, 1),
            Solver::Heun => (heun_step, 2),
            Solver::Midpoint => (midpoint_step, 2),
            Solver::Rk4 => (rk4_step, 4),
            Solver::Dopri5(tol) => return dopri5(field, x, sigma, sigma_next, tol, first_step),
        };
        Ok(Stepped {
            x: rule(field, x, sigma, sigma_next)?,
            nfe,
            accepted: 1,
            rejected: 0,
            next_step: (sigma_next - sigma).abs(),
        })
    }
}

impl fmt::Display for Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Solver::Euler => f.write_str("euler"),
            Solver::Heun => f.write_str("heun"),
            Solver::Midpoint => f.write_str("midpoint"),
            Solver::Rk4 => f.write_str("rk4"),
            Solver::Dopri5(tol) if *tol == Tolerance::default() => f.write_str("dopri5"),
            Solver::Dopri5(tol) => write!(f, "dopri5:rtol={:e},atol={:e}", tol.rtol, tol.atol),
        }
    }
}

impl FromStr for Solver {
    type Err = Error;

    /// Case-insensitive; surrounding whitespace is ignored.
    fn from_str(text: &str) -> Result<Self> {
        let name = text.trim().to_ascii_lowercase();
        match name.as_str() {
            "euler" => Ok(Solver::Euler),
            "heun" => Ok(Solver::Heun),
            "midpoint" => Ok(Solver::Midpoint),
            "rk4" => Ok(Solver::Rk4),
            "dopri5" => Ok(Solver::Dopri5(Tolerance::default())),
            _ => match name.strip_prefix("dopri5:") {
                Some(options) => parse_tolerance(options, text).map(Solver::Dopri5),
                None => Err(Error::UnknownSolver {
                    name: text.to_string(),
                }),
            },
        }
    }
}

/// `rtol=...,atol=...`, either key optional (the other keeps its default).
fn parse_tolerance(options: &str, spec: &str) -> Result<Tolerance> {
    let bad = || Error::Dopri5Spec {
        spec: spec.to_string(),
    };
    let mut tol = Tolerance::default();
    for option in options.split(',') {
        let (key, value) = option.split_once('=').ok_or_else(bad)?;
        let value: f64 = value.trim().parse().map_err(|_| bad())?;
        match key.trim() {
            "rtol" => tol.rtol = value,
            "atol" => tol.atol = value,
            _ => return Err(bad()),
        }
    }
    Tolerance::new(tol.rtol, tol.atol)
}

impl serde::Serialize for Solver {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Solver {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
