//! The adapter that joins a discrete-time variance-preserving (VP) diffusion model
//! (DDPM / DDIM / Stable Diffusion 1.x-2.x: epsilon, v or sample prediction over
//! `alphas_cumprod`) to the project's one time convention ([`semaug_core::time`]).
//!
//! # The change of variables
//!
//! With `a = sqrt(abar)` and `b = sqrt(1 - abar)`, the VP state is `x_t = a x0 + b eps`.
//! Dividing by `a + b`,
//!
//! ```text
//! x_t / (a + b) = a/(a+b) x0 + b/(a+b) eps = (1 - sigma) x0 + sigma eps,   sigma = b/(a+b),
//! ```
//!
//! so the VP state at `abar` is the flow state `x = x_t / (a + b)` at `sigma = b / (a + b)`.
//! Conversely a sigma fixes `(a, b)` through `a^2 + b^2 = 1` and `b / a = sigma / (1 - sigma)`:
//! `a = (1 - sigma) / n`, `b = sigma / n` with `n = sqrt((1 - sigma)^2 + sigma^2)`, and
//! `a + b = 1 / n` ([`vp_coefficients`], [`flow_to_vp`], [`vp_to_flow`]).
//!
//! # The timestep of a sigma
//!
//! The model was trained at the integer timesteps `k = 0..T-1`, whose sigmas `sigma_k`
//! increase with `k`. A sigma between two of them gets a fractional timestep by linear
//! interpolation of `lambda = ln(sigma / (1 - sigma)) = ln(b / a)` (half the negative
//! log-SNR): `t = k + (lambda - lambda_k) / (lambda_{k+1} - lambda_k)`, as k-diffusion's
//! `DiscreteSchedule.sigma_to_t` interpolates `log sigma_VE` (the same quantity, since the
//! VE sigma is `b / a`). It is monotone and exact at the nodes, so every sigma of a DDIM
//! grid reaches the UNet as the very integer timestep diffusers passes
//! ([`VpSchedule::timestep`], [`VpSchedule::sigma_at`]).
//!
//! # The velocity
//!
//! At `(x, sigma)` the model sees `x_t = (a + b) x` and `t(sigma)`; its output becomes a
//! pair `(x0_pred, eps_pred)` with `x_t = a x0_pred + b eps_pred` (the relation every
//! prediction type inverts exactly), and the velocity is `v = eps_pred - x0_pred`.
//!
//! **Deterministic DDIM is Euler in flow space.** Dividing `x_t = a x0_pred + b eps_pred` by
//! `a + b` gives `x = (1 - s) x0_pred + s eps_pred` *exactly* (not only in expectation). One
//! Euler step to `s'` is then
//!
//! ```text
//! x + (s' - s) v = (1 - s) x0_pred + s eps_pred + (s' - s)(eps_pred - x0_pred)
//!                = (1 - s') x0_pred + s' eps_pred,
//! ```
//!
//! and multiplying by `a' + b'` gives `a' x0_pred + b' eps_pred`: DDIM's `eta = 0` update
//! `x_{t'} = sqrt(abar') x0_pred + sqrt(1 - abar') eps_pred`. So Euler over the sigmas of
//! the DDIM timesteps ([`VpSchedule::ddim_grid`], which ends at the sigma of DDIM's
//! `final_alpha_cumprod`) reproduces diffusers' DDIM trajectory up to float rounding, and
//! classifier-free guidance matches as well because `v` is affine in the model output.
//! (DDIM *inversion* in diffusers evaluates the model at the next timestep while the sample
//! is still at the previous one; that is an Euler step with the model's timestep taken one
//! grid point ahead, not an Euler step of this field: `tests/pretrained_sd.rs` shows both.)
//!
//! # Grids
//!
//! A VP model's noise levels crowd near sigma 1 (DDPM's linear betas put timesteps
//! 527..999 above sigma 0.8, and 659..999 above 0.9). [`VpSchedule::timestep_grid`]
//! spends steps uniformly in timestep, as DDIM does; a uniform sigma grid leaves the
//! high-noise half of the timesteps to a few coarse steps. For a
//! random-weight eps model the field is also stiff there: the clean estimate
//! `(x_t - b eps) / a` amplifies the network's error by `1 / a` (about 150 at t = 999 for
//! linear betas), which a trained model's `eps ~ x_t / b` cancels.
//!
//! # Outside the trained range
//!
//! The grids of the project run from sigma 1 to 0, beyond `[sigma_0, sigma_{T-1}]`. There
//! the model is evaluated at the nearest end timestep and its output is read at that
//! timestep's `(a, b)`. Above the range the clean estimate is held and
//! `v = (x - x0_pred) / sigma`; below it the noise estimate is held and
//! `v = (eps_pred - x) / (1 - sigma)`. Both equal `eps_pred - x0_pred` when the pair is
//! consistent (as at the range ends, so the field is continuous there) and, unlike
//! `eps - (x_t - b eps) / a`, stay finite at sigma 1 and 0.
//!
//! Sample clipping and thresholding of the schedulers are not applied: the adapter is the
//! probability-flow ODE, which inversion needs to be invertible.

use candle_core::Tensor;
use semaug_core::SigmaGrid;

use super::error::PretrainedError;
use crate::sd::{DdimSchedule, PredictionType};

/// `(a, b)` with `a^2 + b^2 = 1` and `b / (a + b) = sigma`: the VP signal and noise scales
/// of a flow sigma.
pub fn vp_coefficients(sigma: f64) -> (f64, f64) {
    let norm = (1.0 - sigma).hypot(sigma);
    ((1.0 - sigma) / norm, sigma / norm)
}

/// `sigma = b / (a + b)` of a VP noise level `abar` (`a = sqrt(abar)`, `b = sqrt(1 - abar)`).
pub fn sigma_from_alpha_cumprod(alpha_cumprod: f64) -> f64 {
    let (a, b) = (alpha_cumprod.sqrt(), (1.0 - alpha_cumprod).sqrt());
    b / (a + b)
}

/// `a + b`: the factor from the flow state to the VP state at `sigma`.
pub fn vp_scale(sigma: f64) -> f64 {
    let (a, b) = vp_coefficients(sigma);
    a + b
}

/// The VP state `x_t = (a + b) x` of the flow state `x` at `sigma`.
pub fn flow_to_vp(x: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    x.affine(vp_scale(sigma), 0.0)
}

/// The flow state `x = x_t / (a + b)` of the VP state `x_t` at `sigma`.
pub fn vp_to_flow(x_t: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
    x_t.affine(1.0 / vp_scale(sigma), 0.0)
}

/// `ln(sigma / (1 - sigma))`, the interpolation variable (`ln(b / a)`).
fn log_ratio(sigma: f64) -> f64 {
    (sigma / (1.0 - sigma)).ln()
}

/// The inverse of [`log_ratio`].
fn sigma_of_log_ratio(lambda: f64) -> f64 {
    1.0 / (1.0 + (-lambda).exp())
}

/// A VP model's noise schedule seen in sigma: the sigma of every training timestep and what
/// the network predicts.
#[derive(Debug, Clone)]
pub struct VpSchedule {
    /// `sigma_k` of training timestep `k`, strictly increasing.
    sigmas: Vec<f64>,
    /// `ln(sigma_k / (1 - sigma_k))`, strictly increasing.
    log_ratios: Vec<f64>,
    prediction: PredictionType,
}

impl VpSchedule {
    /// A schedule from `alphas_cumprod` (one per training timestep, strictly decreasing,
    /// inside (0, 1)) and the prediction type.
    pub fn new(
        alphas_cumprod: &[f32],
        prediction: PredictionType,
    ) -> Result<Self, PretrainedError> {
        let bad = |detail: String| PretrainedError::Schedule {
            origin: "alphas_cumprod".into(),
            detail,
        };
        if alphas_cumprod.len() < 2 {
            return Err(bad(format!(
                "{} training timesteps; at least 2 are needed",
                alphas_cumprod.len()
            )));
        }
        if let Some((k, v)) = alphas_cumprod
            .iter()
            .enumerate()
            .find(|(_, v)| !(**v > 0.0 && **v < 1.0))
        {
            return Err(bad(format!(
                "entry {k} is {v}; every alpha_cumprod must lie strictly inside (0, 1) \
                 (zero-terminal-SNR schedules are not supported)"
            )));
        }
        let sigmas: Vec<f64> = alphas_cumprod
            .iter()
            .map(|&abar| sigma_from_alpha_cumprod(abar as f64))
            .collect();
        let log_ratios: Vec<f64> = sigmas.iter().map(|&s| log_ratio(s)).collect();
        if let Some(k) = log_ratios.windows(2).position(|w| w[1] <= w[0]) {
            return Err(bad(format!(
                "not strictly decreasing at timestep {}: {} then {}",
                k + 1,
                alphas_cumprod[k],
                alphas_cumprod[k + 1]
            )));
        }
        Ok(Self {
            sigmas,
            log_ratios,
            prediction,
        })
    }

    /// The schedule of a diffusers DDIM/DDPM scheduler config.
    pub fn from_ddim(schedule: &DdimSchedule) -> Result<Self, PretrainedError> {
        Self::new(schedule.alphas_cumprod(), schedule.config().prediction_type)
    }

    pub fn prediction(&self) -> PredictionType {
        self.prediction
    }

    /// Number of training timesteps `T`.
    pub fn train_timesteps(&self) -> usize {
        self.sigmas.len()
    }

    /// `(sigma_0, sigma_{T-1})`: the sigmas the model was trained between.
    pub fn sigma_range(&self) -> (f64, f64) {
        (self.sigmas[0], self.sigmas[self.sigmas.len() - 1])
    }

    /// The sigma of a (possibly fractional) timestep, interpolating `ln(sigma/(1-sigma))`
    /// linearly between the integer ones; clamped to `[0, T-1]`.
    pub fn sigma_at(&self, timestep: f64) -> f64 {
        let last = self.sigmas.len() - 1;
        let t = timestep.clamp(0.0, last as f64);
        let k = (t.floor() as usize).min(last - 1);
        let frac = t - k as f64;
        if frac == 0.0 {
            return self.sigmas[k];
        }
        if frac == 1.0 {
            return self.sigmas[k + 1];
        }
        let (l0, l1) = (self.log_ratios[k], self.log_ratios[k + 1]);
        sigma_of_log_ratio(l0 + frac * (l1 - l0))
    }

    /// The continuous timestep of `sigma`: exact integers at the training sigmas, linear in
    /// `ln(sigma/(1-sigma))` between them, clamped to `[0, T-1]` outside the range.
    pub fn timestep(&self, sigma: f64) -> f64 {
        let last = self.sigmas.len() - 1;
        if sigma.is_nan() || sigma <= self.sigmas[0] {
            return 0.0;
        }
        if sigma >= self.sigmas[last] {
            return last as f64;
        }
        let lambda = log_ratio(sigma);
        let above = self.log_ratios.partition_point(|&l| l <= lambda);
        let k = above.saturating_sub(1).min(last - 1);
        let (l0, l1) = (self.log_ratios[k], self.log_ratios[k + 1]);
        k as f64 + ((lambda - l0) / (l1 - l0)).clamp(0.0, 1.0)
    }

    /// The sigmas of integer `timesteps` followed by the sigma of `end_alpha_cumprod` (where
    /// the last DDIM step lands): Euler over this grid is DDIM over those timesteps.
    pub fn grid_for_timesteps(
        &self,
        timesteps: &[i64],
        end_alpha_cumprod: f64,
    ) -> Result<SigmaGrid, PretrainedError> {
        let mut sigmas = Vec::with_capacity(timesteps.len() + 1);
        for &t in timesteps {
            let sigma = usize::try_from(t)
                .ok()
                .and_then(|k| self.sigmas.get(k))
                .ok_or_else(|| PretrainedError::Schedule {
                    origin: "timesteps".into(),
                    detail: format!("{t} is outside 0..{}", self.sigmas.len()),
                })?;
            sigmas.push(*sigma);
        }
        sigmas.push(sigma_from_alpha_cumprod(end_alpha_cumprod));
        SigmaGrid::new(sigmas).map_err(|e| PretrainedError::Schedule {
            origin: "timesteps".into(),
            detail: e.to_string(),
        })
    }

    /// The flow grid equivalent to `ddim`'s `n`-step deterministic sampler: the sigmas of
    /// `ddim.timesteps(n)` (e.g. 901, 801, ..., 1) and then the sigma of the alpha its last
    /// step lands on (`final_alpha_cumprod`: `alphas_cumprod[0]` for SD's
    /// `set_alpha_to_one = false`, else 1, i.e. sigma 0).
    pub fn ddim_grid(&self, ddim: &DdimSchedule, n: usize) -> Result<SigmaGrid, PretrainedError> {
        let timesteps = ddim.timesteps(n)?;
        let last = timesteps.last().copied().unwrap_or(0);
        let end = ddim.alpha_cumprod(last - ddim.step_ratio(n) as i64)?;
        self.grid_for_timesteps(&timesteps, end as f64)
    }

    /// `steps` intervals from sigma 1 to 0 that are uniform in the model's timestep:
    /// `1, sigma(t_1), ..., sigma(t_{steps-1}), 0` with `t_i = (T - 1)(1 - i / steps)`
    /// (see the module docs on grids).
    pub fn timestep_grid(&self, steps: usize) -> Result<SigmaGrid, PretrainedError> {
        let bad = |detail: String| PretrainedError::Schedule {
            origin: "timestep grid".into(),
            detail,
        };
        if steps == 0 {
            return Err(bad("needs at least 1 step".into()));
        }
        let last = (self.sigmas.len() - 1) as f64;
        let inner = (1..steps).map(|i| self.sigma_at(last * (steps - i) as f64 / steps as f64));
        let sigmas: Vec<f64> = std::iter::once(1.0)
            .chain(inner)
            .chain(std::iter::once(0.0))
            .collect();
        SigmaGrid::new(sigmas).map_err(|e| bad(e.to_string()))
    }

    /// Splits a model output at `x_t` into `(x0_pred, eps_pred)` read at the VP level
    /// `(a, b)` (`a^2 + b^2 = 1`), so that `x_t = a x0_pred + b eps_pred`.
    pub fn split_prediction(
        &self,
        output: &Tensor,
        x_t: &Tensor,
        a: f64,
        b: f64,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        Ok(match self.prediction {
            PredictionType::Epsilon => {
                let x0 = (x_t - output.affine(b, 0.0)?)?.affine(1.0 / a, 0.0)?;
                (x0, output.clone())
            }
            PredictionType::Sample => {
                let eps = (x_t - output.affine(a, 0.0)?)?.affine(1.0 / b, 0.0)?;
                (output.clone(), eps)
            }
            PredictionType::VPrediction => {
                let x0 = (x_t.affine(a, 0.0)? - output.affine(b, 0.0)?)?;
                let eps = (x_t.affine(b, 0.0)? + output.affine(a, 0.0)?)?;
                (x0, eps)
            }
        })
    }

    /// The flow velocity at `(x, sigma)` of the VP model `model(x_t, timestep) -> output`
    /// (see the module docs for the mapping and the ends of the range).
    pub fn velocity<F>(&self, x: &Tensor, sigma: f64, model: F) -> candle_core::Result<Tensor>
    where
        F: FnOnce(&Tensor, f64) -> candle_core::Result<Tensor>,
    {
        if !(0.0..=1.0).contains(&sigma) {
            candle_core::bail!("sigma {sigma} is outside [0, 1]");
        }
        let (a, b) = vp_coefficients(sigma);
        let x_t = x.affine(a + b, 0.0)?;
        let output = model(&x_t, self.timestep(sigma))?;
        let (low, high) = self.sigma_range();
        // The model's output belongs to its own (clamped) noise level.
        let level = sigma.clamp(low, high);
        let (am, bm) = vp_coefficients(level);
        let (x0, eps) = self.split_prediction(&output, &x_t, am, bm)?;
        if sigma > high {
            (x - x0)?.affine(1.0 / sigma, 0.0)
        } else if sigma < low {
            (eps - x)?.affine(1.0 / (1.0 - sigma), 0.0)
        } else {
            eps - x0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear_schedule() -> VpSchedule {
        let mut abar = 1.0f64;
        let table: Vec<f32> = (0..1000)
            .map(|k| {
                abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * k as f64 / 999.0);
                abar as f32
            })
            .collect();
        VpSchedule::new(&table, PredictionType::Epsilon).expect("schedule")
    }

    #[test]
    fn coefficients_are_unit_norm_and_give_back_sigma() {
        for sigma in [0.0, 1e-6, 0.2, 0.5, 0.93, 1.0] {
            let (a, b) = vp_coefficients(sigma);
            assert!((a * a + b * b - 1.0).abs() < 1e-15);
            assert!((b / (a + b) - sigma).abs() < 1e-15, "sigma {sigma}");
        }
        for abar in [0.9999, 0.5, 0.0047] {
            let sigma = sigma_from_alpha_cumprod(abar);
            let (a, _) = vp_coefficients(sigma);
            assert!((a * a - abar).abs() < 1e-14, "abar {abar}");
        }
    }

    #[test]
    fn timesteps_are_exact_at_nodes_and_invert_sigma_at() {
        let s = linear_schedule();
        for k in [0usize, 1, 17, 500, 998, 999] {
            assert_eq!(s.timestep(s.sigma_at(k as f64)), k as f64);
        }
        for t in [0.25, 3.5, 400.125, 998.75] {
            assert!((s.timestep(s.sigma_at(t)) - t).abs() < 1e-9, "t {t}");
        }
        let (low, high) = s.sigma_range();
        assert_eq!(s.timestep(0.0), 0.0);
        assert_eq!(s.timestep(low * 0.5), 0.0);
        assert_eq!(s.timestep(1.0), 999.0);
        assert_eq!(s.timestep((high + 1.0) / 2.0), 999.0);
        assert_eq!(s.timestep(f64::NAN), 0.0);
        // Monotone between nodes.
        let ts: Vec<f64> = (1..100)
            .map(|i| s.timestep(low + (high - low) * i as f64 / 100.0))
            .collect();
        assert!(ts.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn bad_tables_are_rejected() {
        let eps = PredictionType::Epsilon;
        assert!(VpSchedule::new(&[0.5], eps).is_err());
        assert!(VpSchedule::new(&[0.9, 0.0], eps).is_err());
        assert!(VpSchedule::new(&[1.0, 0.5], eps).is_err());
        assert!(VpSchedule::new(&[0.5, 0.6], eps).is_err());
        assert!(VpSchedule::new(&[0.5, 0.5], eps).is_err());
        assert!(VpSchedule::new(&[0.9, f32::NAN], eps).is_err());
    }
}
