//! The DDIM noise schedule and its deterministic steps, forward and inverse, as pure
//! functions of `alphas_cumprod` (no hidden step counter: every call names its timestep and
//! the number of inference steps).
//!
//! Ports `DDIMScheduler` (`set_timesteps`, `step` with `eta = 0`, `add_noise`) and
//! `DDIMInverseScheduler` (`set_timesteps`, `step`) from diffusers
//! `schedulers/scheduling_ddim.py` and `schedulers/scheduling_ddim_inverse.py`, and the
//! img2img truncation of `pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py`
//! (`get_timesteps`). The tables are bit-identical to PyTorch's: `torch.linspace` in float32
//! computes `start + step * i` with one rounding (and from the end for the upper half), and
//! CPU `cumprod` accumulates in float64.

use std::path::Path;

use candle_core::Tensor;
use serde::Deserialize;

use super::error::SdError;
use super::weights::read_json;

/// The scheduler config file of a diffusers `scheduler/` folder.
pub const SCHEDULER_CONFIG_FILE: &str = "scheduler_config.json";

/// What the denoising network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    Epsilon,
    VPrediction,
    Sample,
}

/// How `betas` are laid out over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredCosCapV2,
}

/// How the inference timesteps are picked from the training ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    Leading,
    Linspace,
    Trailing,
}

fn default_train_steps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_schedule() -> BetaSchedule {
    BetaSchedule::Linear
}
fn default_true() -> bool {
    true
}
fn default_prediction() -> PredictionType {
    PredictionType::Epsilon
}
fn default_spacing() -> TimestepSpacing {
    TimestepSpacing::Leading
}
fn default_clip_range() -> f64 {
    1.0
}

/// diffusers `DDIMScheduler`'s config (`scheduler_config.json`), with its defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DdimConfig {
    #[serde(default = "default_train_steps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    #[serde(default = "default_schedule")]
    pub beta_schedule: BetaSchedule,
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    #[serde(default = "default_true")]
    pub clip_sample: bool,
    #[serde(default = "default_clip_range")]
    pub clip_sample_range: f64,
    #[serde(default = "default_true")]
    pub set_alpha_to_one: bool,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default = "default_prediction")]
    pub prediction_type: PredictionType,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default = "default_spacing")]
    pub timestep_spacing: TimestepSpacing,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
}

impl DdimConfig {
    /// The SD 1.x scheduler (`scaled_linear` 0.00085..0.012, `set_alpha_to_one = false`,
    /// `steps_offset = 1`, no clipping, epsilon, leading spacing).
    pub fn sd15() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            trained_betas: None,
            clip_sample: false,
            clip_sample_range: 1.0,
            set_alpha_to_one: false,
            steps_offset: 1,
            prediction_type: PredictionType::Epsilon,
            thresholding: false,
            timestep_spacing: TimestepSpacing::Leading,
            rescale_betas_zero_snr: false,
        }
    }

    fn check(&self, origin: &str) -> Result<(), SdError> {
        let bad =
            |field, detail: &str| SdError::unsupported(origin, "DDIM scheduler", field, detail);
        if self.thresholding {
            return Err(bad(
                "thresholding",
                "= true is not supported; set it to false",
            ));
        }
        if self.rescale_betas_zero_snr {
            return Err(bad("rescale_betas_zero_snr", "= true is not supported"));
        }
        if self.num_train_timesteps < 2 {
            return Err(bad("num_train_timesteps", "must be at least 2"));
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != self.num_train_timesteps {
                return Err(bad(
                    "trained_betas",
                    "must have num_train_timesteps entries",
                ));
            }
        }
        Ok(())
    }
}

/// One DDIM step's results.
#[derive(Debug, Clone)]
pub struct DdimStep {
    /// The sample at the next timestep (`prev_sample`).
    pub prev_sample: Tensor,
    /// The model's estimate of the clean sample (`pred_original_sample`).
    pub pred_original_sample: Tensor,
}

/// The DDIM tables: `betas`, `alphas_cumprod` and the alpha used past either end.
#[derive(Debug, Clone)]
pub struct DdimSchedule {
    config: DdimConfig,
    betas: Vec<f32>,
    alphas_cumprod: Vec<f32>,
    /// `alphas_cumprod` "before t = 0": 1, or `alphas_cumprod[0]` when
    /// `set_alpha_to_one = false` (the forward `final_alpha_cumprod` and the inverse
    /// `initial_alpha_cumprod` are the same number).
    boundary_alpha_cumprod: f32,
}

impl DdimSchedule {
    pub fn new(config: DdimConfig) -> Result<Self, SdError> {
        config.check("<DdimConfig>")?;
        Ok(Self::from_checked(config))
    }

    /// Loads `dir/scheduler_config.json` (a diffusers `scheduler/` folder).
    pub fn load(dir: &Path) -> Result<Self, SdError> {
        let path = dir.join(SCHEDULER_CONFIG_FILE);
        let config: DdimConfig = read_json(&path, "DDIM scheduler")?;
        config.check(&path.display().to_string())?;
        Ok(Self::from_checked(config))
    }

    fn from_checked(config: DdimConfig) -> Self {
        let betas = betas(&config);
        let alphas_cumprod = alphas_cumprod(&betas);
        let boundary_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Self {
            config,
            betas,
            alphas_cumprod,
            boundary_alpha_cumprod,
        }
    }

    pub fn config(&self) -> &DdimConfig {
        &self.config
    }

    pub fn betas(&self) -> &[f32] {
        &self.betas
    }

    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// `alphas_cumprod[t]`, or the boundary alpha for `t < 0` (before the first timestep).
    pub fn alpha_cumprod(&self, t: i64) -> Result<f32, SdError> {
        if t < 0 {
            return Ok(self.boundary_alpha_cumprod);
        }
        self.alphas_cumprod.get(t as usize).copied().ok_or_else(|| {
            SdError::input(
                "timestep",
                format!(
                    "{t} is past the {} training timesteps",
                    self.alphas_cumprod.len()
                ),
            )
        })
    }

    /// Distance between consecutive inference timesteps (`T // n`, used by `step`).
    pub fn step_ratio(&self, num_inference_steps: usize) -> usize {
        self.config.num_train_timesteps / num_inference_steps.max(1)
    }

    fn check_steps(&self, n: usize) -> Result<(), SdError> {
        let t = self.config.num_train_timesteps;
        if n == 0 || n > t {
            return Err(SdError::input(
                "num_inference_steps",
                format!("{n} must be in 1..={t}"),
            ));
        }
        Ok(())
    }

    /// `DDIMScheduler.set_timesteps(n).timesteps`, descending (901, 801, ..., 1 for SD at 10).
    pub fn timesteps(&self, n: usize) -> Result<Vec<i64>, SdError> {
        self.check_steps(n)?;
        let train = self.config.num_train_timesteps;
        let offset = self.config.steps_offset as i64;
        let ts: Vec<i64> = match self.config.timestep_spacing {
            TimestepSpacing::Leading => {
                let ratio = (train / n) as i64;
                (0..n as i64).rev().map(|i| i * ratio + offset).collect()
            }
            TimestepSpacing::Linspace => {
                let last = (train - 1) as f64;
                (0..n)
                    .rev()
                    .map(|i| {
                        let x = if n == 1 {
                            0.0
                        } else {
                            last * i as f64 / (n - 1) as f64
                        };
                        round_half_even(x) as i64
                    })
                    .collect()
            }
            TimestepSpacing::Trailing => {
                let ratio = train as f64 / n as f64;
                (0..n)
                    .map(|i| round_half_even(train as f64 - i as f64 * ratio) as i64 - 1)
                    .collect()
            }
        };
        Ok(ts)
    }

    /// `DDIMInverseScheduler.set_timesteps(n).timesteps`: the DDIM timesteps ascending
    /// (1, 101, ..., 901 for SD at 10).
    pub fn inverse_timesteps(&self, n: usize) -> Result<Vec<i64>, SdError> {
        let mut ts = self.timesteps(n)?;
        ts.reverse();
        Ok(ts)
    }

    /// The timesteps an img2img / SDEdit run of `strength` takes (diffusers `get_timesteps`:
    /// the last `int(n * strength)` of the `n` DDIM timesteps).
    pub fn img2img_timesteps(&self, n: usize, strength: f64) -> Result<Vec<i64>, SdError> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(SdError::input(
                "strength",
                format!("{strength} must be in [0, 1]"),
            ));
        }
        let ts = self.timesteps(n)?;
        let init = ((n as f64 * strength) as usize).min(n);
        Ok(ts[n - init..].to_vec())
    }

    /// `DDIMScheduler.step(model_output, t, sample, eta=0)` with `n` inference steps: from `t`
    /// to `t - T // n` (the boundary alpha past 0).
    pub fn step(
        &self,
        model_output: &Tensor,
        t: i64,
        sample: &Tensor,
        n: usize,
    ) -> Result<DdimStep, SdError> {
        self.check_steps(n)?;
        let alpha_t = self.alpha_cumprod(t)?;
        let alpha_next = self.alpha_cumprod(t - self.step_ratio(n) as i64)?;
        self.transfer(model_output, sample, alpha_t, alpha_next)
    }

    /// `DDIMInverseScheduler.step(model_output, t, sample)` with `n` inference steps: from
    /// `min(t - T // n, T - 1)` (the boundary alpha below 0) up to `t`.
    pub fn inverse_step(
        &self,
        model_output: &Tensor,
        t: i64,
        sample: &Tensor,
        n: usize,
    ) -> Result<DdimStep, SdError> {
        self.check_steps(n)?;
        let last = self.config.num_train_timesteps as i64 - 1;
        let from = (t - self.step_ratio(n) as i64).min(last);
        let alpha_from = self.alpha_cumprod(from)?;
        let alpha_to = self.alpha_cumprod(t)?;
        self.transfer(model_output, sample, alpha_from, alpha_to)
    }

    /// The deterministic DDIM update from noise level `alpha_t` to `alpha_next` (either
    /// direction): `x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps`, with `x0` and `eps`
    /// recovered from the model output as its prediction type says.
    pub fn transfer(
        &self,
        model_output: &Tensor,
        sample: &Tensor,
        alpha_t: f32,
        alpha_next: f32,
    ) -> Result<DdimStep, SdError> {
        if model_output.dims() != sample.dims() {
            return Err(SdError::input(
                "model_output",
                format!(
                    "shape {:?} differs from the sample's {:?}",
                    model_output.dims(),
                    sample.dims()
                ),
            ));
        }
        let device = sample.device();
        let scalar = |v: f32| Tensor::new(v, device);
        let sqrt_a = alpha_t.sqrt();
        let sqrt_b = (1.0 - alpha_t).sqrt();
        // The same operations, in the same order and in f32, as diffusers' step.
        let (x0, eps) = match self.config.prediction_type {
            PredictionType::Epsilon => {
                let x0 =
                    (sample - (model_output * sqrt_b as f64)?)?.broadcast_div(&scalar(sqrt_a)?)?;
                (x0, model_output.clone())
            }
            PredictionType::Sample => {
                let eps =
                    (sample - (model_output * sqrt_a as f64)?)?.broadcast_div(&scalar(sqrt_b)?)?;
                (model_output.clone(), eps)
            }
            PredictionType::VPrediction => {
                let x0 = ((sample * sqrt_a as f64)? - (model_output * sqrt_b as f64)?)?;
                let eps = ((model_output * sqrt_a as f64)? + (sample * sqrt_b as f64)?)?;
                (x0, eps)
            }
        };
        let x0 = if self.config.clip_sample {
            let r = self.config.clip_sample_range as f32;
            x0.clamp(-r, r)?
        } else {
            x0
        };
        let direction = (&eps * (1.0 - alpha_next).sqrt() as f64)?;
        let prev_sample = ((&x0 * alpha_next.sqrt() as f64)? + direction)?;
        Ok(DdimStep {
            prev_sample,
            pred_original_sample: x0,
        })
    }

    /// `add_noise(x0, noise, t) = sqrt(a_t) x0 + sqrt(1 - a_t) noise`.
    pub fn add_noise(&self, x0: &Tensor, noise: &Tensor, t: i64) -> Result<Tensor, SdError> {
        if t < 0 {
            return Err(SdError::input("timestep", format!("{t} must be >= 0")));
        }
        let a = self.alpha_cumprod(t)?;
        Ok(((x0 * a.sqrt() as f64)? + (noise * (1.0 - a).sqrt() as f64)?)?)
    }
}

/// `torch.linspace(start, end, n, dtype=float32)` as PyTorch's CPU kernel computes it:
/// f32 endpoints and step, `start + step * i` (lower half) or `end - step * (n - 1 - i)`
/// (upper half), each rounded once.
fn linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    let step = (end - start) / (n - 1) as f32;
    let (start, end, step) = (start as f64, end as f64, step as f64);
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                (start + step * i as f64) as f32
            } else {
                (end - step * (n - 1 - i) as f64) as f32
            }
        })
        .collect()
}

/// The betas of `config` in float32, as diffusers builds them.
fn betas(config: &DdimConfig) -> Vec<f32> {
    let n = config.num_train_timesteps;
    if let Some(trained) = &config.trained_betas {
        return trained.iter().map(|&b| b as f32).collect();
    }
    match config.beta_schedule {
        BetaSchedule::Linear => linspace_f32(config.beta_start, config.beta_end, n),
        BetaSchedule::ScaledLinear => {
            linspace_f32(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
                .into_iter()
                .map(|b| b * b)
                .collect()
        }
        BetaSchedule::SquaredCosCapV2 => {
            // `betas_for_alpha_bar` (cosine): computed in float64, then cast.
            let alpha_bar = |t: f64| {
                ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .powi(2)
            };
            (0..n)
                .map(|i| {
                    let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
                })
                .collect()
        }
    }
}

/// `cumprod(1 - betas)`: `1 - beta` in f32, the running product in f64 (PyTorch's CPU
/// accumulator type for float32), each entry rounded to f32.
fn alphas_cumprod(betas: &[f32]) -> Vec<f32> {
    let mut product = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            product *= (1.0 - b) as f64;
            product as f32
        })
        .collect()
}

/// numpy's `round` (half to even).
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacings_match_diffusers_tables() {
        let mut c = DdimConfig::sd15();
        let s = DdimSchedule::new(c.clone()).expect("schedule");
        assert_eq!(s.timesteps(4).expect("ts"), vec![751, 501, 251, 1]);
        c.timestep_spacing = TimestepSpacing::Trailing;
        c.steps_offset = 0;
        let s = DdimSchedule::new(c.clone()).expect("schedule");
        assert_eq!(s.timesteps(4).expect("ts"), vec![999, 749, 499, 249]);
        c.timestep_spacing = TimestepSpacing::Linspace;
        let s = DdimSchedule::new(c).expect("schedule");
        // np.linspace(0, 999, 4).round() = [0, 333, 666, 999]
        assert_eq!(s.timesteps(4).expect("ts"), vec![999, 666, 333, 0]);
    }

    #[test]
    fn round_half_even_is_numpy_round() {
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        assert_eq!(round_half_even(2.4), 2.0);
        assert_eq!(round_half_even(-2.5), -2.0);
    }
}
