//! SD3's sigma schedule: diffusers `FlowMatchEulerDiscreteScheduler` without dynamic
//! shifting, as plain functions of its config (`scheduler/scheduler_config.json`).
//!
//! SD3's flow already uses this project's time convention (sigma = 1 is noise, the model
//! predicts `noise - x0`), so the scheduler contributes only its grid. diffusers shifts
//! twice, and the grid reproduces that bit for bit (`scheduling_flow_match_euler_discrete.py`):
//!
//! 1. training sigmas, in f32: `s = (N..=1) / N`, `shift s / (1 + (shift - 1) s)`;
//! 2. `t = linspace(N sigma_max, N sigma_min, n)` in f64 over the shifted training range,
//!    `s = t / N`, shifted **again**, cast to f32, then a terminal 0 appended.
//!
//! A model timestep is `sigma * N` in f32. The grid is therefore not
//! [`SigmaGrid::shifted`] (a uniform grid shifted once, ending at 0).

use std::path::Path;

use semaug_core::SigmaGrid;
use serde::Deserialize;

use crate::sd::ddim::SCHEDULER_CONFIG_FILE;
use crate::sd::error::SdError;
use crate::sd::weights::read_json;

/// The scheduler class this module implements.
pub const FLOW_MATCH_SCHEDULER: &str = "FlowMatchEulerDiscreteScheduler";

fn default_train_timesteps() -> usize {
    1000
}
fn default_shift() -> f64 {
    1.0
}

/// diffusers `FlowMatchEulerDiscreteScheduler`'s config (the fields that shape the grid;
/// every option this module does not implement is refused when set).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlowMatchConfig {
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_shift")]
    pub shift: f64,
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    #[serde(default)]
    pub invert_sigmas: bool,
    #[serde(default)]
    pub use_karras_sigmas: bool,
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    #[serde(default)]
    pub use_beta_sigmas: bool,
    #[serde(default)]
    pub stochastic_sampling: bool,
}

impl FlowMatchConfig {
    fn check(&self, origin: &str) -> Result<(), SdError> {
        let bad =
            |field, detail: &str| SdError::unsupported(origin, FLOW_MATCH_SCHEDULER, field, detail);
        if let Some(class) = self
            .class_name
            .as_deref()
            .filter(|c| *c != FLOW_MATCH_SCHEDULER)
        {
            return Err(SdError::unsupported(
                origin,
                FLOW_MATCH_SCHEDULER,
                "_class_name",
                format!("is {class:?}; SD3 pipelines use {FLOW_MATCH_SCHEDULER}"),
            ));
        }
        if self.num_train_timesteps < 2 {
            return Err(bad("num_train_timesteps", "must be at least 2"));
        }
        if !(self.shift.is_finite() && self.shift > 0.0) {
            return Err(bad("shift", "must be a positive finite number"));
        }
        let refused = [
            ("use_dynamic_shifting", self.use_dynamic_shifting),
            ("shift_terminal", self.shift_terminal.is_some()),
            ("invert_sigmas", self.invert_sigmas),
            ("use_karras_sigmas", self.use_karras_sigmas),
            ("use_exponential_sigmas", self.use_exponential_sigmas),
            ("use_beta_sigmas", self.use_beta_sigmas),
            ("stochastic_sampling", self.stochastic_sampling),
        ];
        match refused.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(bad(
                field,
                "is set; only the static shift of SD3 (shift, no other option) is supported",
            )),
            None => Ok(()),
        }
    }
}

/// The SD3 flow schedule: training sigmas, inference grids and timesteps.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatchSchedule {
    config: FlowMatchConfig,
}

impl FlowMatchSchedule {
    /// Reads `scheduler_config.json` from a diffusers `scheduler/` folder.
    pub fn load(dir: &Path) -> Result<Self, SdError> {
        let path = dir.join(SCHEDULER_CONFIG_FILE);
        let config: FlowMatchConfig = read_json(&path, FLOW_MATCH_SCHEDULER)?;
        Self::new(config, &path.display().to_string())
    }

    /// A schedule from a parsed config; `origin` names it in errors.
    pub fn new(config: FlowMatchConfig, origin: &str) -> Result<Self, SdError> {
        config.check(origin)?;
        Ok(Self { config })
    }

    pub fn config(&self) -> &FlowMatchConfig {
        &self.config
    }

    pub fn shift(&self) -> f64 {
        self.config.shift
    }

    /// `N`, the model's timestep scale (`timestep = sigma * N`).
    pub fn num_train_timesteps(&self) -> usize {
        self.config.num_train_timesteps
    }

    /// The shifted training sigmas `[N]`, descending from 1, computed in f32 as diffusers.
    pub fn train_sigmas(&self) -> Vec<f32> {
        let n = self.config.num_train_timesteps;
        let shift = self.config.shift as f32;
        (0..n)
            .map(|i| {
                let s = (n - i) as f32 / n as f32;
                shift * s / (1.0 + (shift - 1.0) * s)
            })
            .collect()
    }

    /// The `steps + 1` f32 sigmas of `set_timesteps(steps)`, the terminal 0 included.
    pub fn sigmas(&self, steps: usize) -> Result<Vec<f32>, SdError> {
        if steps == 0 {
            return Err(SdError::input("steps", "must be at least 1"));
        }
        let train = self.train_sigmas();
        let n = self.config.num_train_timesteps as f64;
        let first = f64::from(train[0]) * n;
        let last = f64::from(train[train.len() - 1]) * n;
        let shift = self.config.shift;
        let mut sigmas: Vec<f32> = linspace(first, last, steps)
            .into_iter()
            .map(|t| {
                let s = t / n;
                (shift * s / (1.0 + (shift - 1.0) * s)) as f32
            })
            .collect();
        sigmas.push(0.0);
        Ok(sigmas)
    }

    /// The `steps` f32 model timesteps `sigma * N` of `set_timesteps(steps)`.
    pub fn timesteps(&self, steps: usize) -> Result<Vec<f32>, SdError> {
        let n = self.config.num_train_timesteps as f32;
        let sigmas = self.sigmas(steps)?;
        Ok(sigmas[..steps].iter().map(|&s| s * n).collect())
    }

    /// The model timestep of a sigma: `sigma * N` in f32, as the pipelines feed it.
    pub fn timestep(&self, sigma: f64) -> f32 {
        sigma as f32 * self.config.num_train_timesteps as f32
    }

    /// The descending grid of `steps` intervals on which Euler is diffusers' SD3 sampler.
    pub fn grid(&self, steps: usize) -> Result<SigmaGrid, SdError> {
        let sigmas = self.sigmas(steps)?.into_iter().map(f64::from).collect();
        SigmaGrid::new(sigmas).map_err(|e| SdError::input("steps", e.to_string()))
    }

    /// The sigma at which diffusers' SD3 img2img pipeline enters for its step-fraction
    /// `strength` on a `steps`-step grid: `sigmas[t_start]` with
    /// `t_start = int(steps - min(steps * strength, steps))`. Truncating [`Self::grid`] at
    /// this sigma ([`SigmaGrid::truncated`]) gives the steps the pipeline runs.
    pub fn img2img_start_sigma(&self, steps: usize, strength: f64) -> Result<f64, SdError> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(SdError::input(
                "strength",
                format!("{strength} is outside [0, 1]"),
            ));
        }
        let n = steps as f64;
        let t_start = (n - (n * strength).min(n)).max(0.0) as usize;
        let sigmas = self.sigmas(steps)?;
        Ok(f64::from(sigmas[t_start.min(steps)]))
    }
}

/// numpy `linspace(start, stop, num)` in f64: `i * step + start`, the last point `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut values: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    values[num - 1] = stop;
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(shift: f64) -> FlowMatchSchedule {
        let config: FlowMatchConfig =
            serde_json::from_str(&format!(r#"{{"shift": {shift}}}"#)).expect("config");
        FlowMatchSchedule::new(config, "test").expect("schedule")
    }

    #[test]
    fn linspace_ends_exactly_on_its_endpoints() {
        assert_eq!(linspace(1.0, 0.25, 4), vec![1.0, 0.75, 0.5, 0.25]);
        assert_eq!(linspace(3.0, 1.0, 1), vec![3.0]);
    }

    #[test]
    fn shift_one_is_the_linear_training_grid() {
        let s = schedule(1.0).sigmas(4).expect("sigmas");
        // linspace(1000, 1, 4) / 1000, then 0.
        assert_eq!(s, vec![1.0, 0.667, 0.334, 0.001, 0.0]);
    }

    #[test]
    fn dynamic_shifting_is_refused_by_name() {
        let config: FlowMatchConfig =
            serde_json::from_str(r#"{"use_dynamic_shifting": true}"#).expect("config");
        match FlowMatchSchedule::new(config, "x.json") {
            Err(SdError::UnsupportedConfig { field, .. }) => {
                assert_eq!(field, "use_dynamic_shifting")
            }
            other => panic!("expected UnsupportedConfig, got {other:?}"),
        }
    }
}
