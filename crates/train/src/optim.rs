//! Optimisers with inspectable state, updating `f32` slices in place.
//!
//! Both follow PyTorch's update rules (`torch.optim.AdamW`, `torch.optim.SGD` with
//! momentum, dampening 0 and optional Nesterov) so hyper-parameters carry over.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::Params;

/// Saving and restoring an optimiser's state by variable name.
pub trait OptimizerState {
    /// Named state tensors (e.g. `m.<var>`, `v.<var>`) and a step counter.
    fn state(&self, params: &Params) -> Result<(Vec<(String, Tensor)>, u64)>;
    /// Restore from what `state` returned; missing entries are an error.
    fn restore(
        &mut self,
        params: &Params,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdamW {
    pub config: AdamWConfig,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    steps: u64,
}

impl AdamW {
    pub fn new(params: &Params, config: AdamWConfig) -> Self {
        let zeros = || {
            params
                .iter()
                .map(|(_, v)| vec![0f32; v.elem_count()])
                .collect()
        };
        Self {
            config,
            m: zeros(),
            v: zeros(),
            steps: 0,
        }
    }

    /// One update of every variable with its gradient at learning rate `lr`.
    pub fn step(&mut self, params: &Params, grads: &[Vec<f32>], lr: f64) -> Result<()> {
        self.steps += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.steps as i32);
        let bias2 = 1.0 - c.beta2.powi(self.steps as i32);
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let step_size = (lr / bias1) as f32;
        let decay = (1.0 - lr * c.weight_decay) as f32;
        let mut values = params.values()?;
        for (k, value) in values.iter_mut().enumerate() {
            let (m, v, g) = (&mut self.m[k], &mut self.v[k], &grads[k]);
            for i in 0..value.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let denom = (v[i] as f64 / bias2).sqrt() as f32 + c.eps as f32;
                value[i] = value[i] * decay - step_size * m[i] / denom;
            }
        }
        params.set_values(&values)
    }
}

impl OptimizerState for AdamW {
    fn state(&self, params: &Params) -> Result<(Vec<(String, Tensor)>, u64)> {
        let mut out = prefixed(params, "m.", &self.m)?;
        out.extend(prefixed(params, "v.", &self.v)?);
        Ok((out, self.steps))
    }

    fn restore(
        &mut self,
        params: &Params,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        self.m = lookup(params, "m.", tensors)?;
        self.v = lookup(params, "v.", tensors)?;
        self.steps = steps;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

#[derive(Debug, Clone)]
pub struct Sgd {
    pub config: SgdConfig,
    buf: Vec<Vec<f32>>,
    steps: u64,
}

impl Sgd {
    pub fn new(params: &Params, config: SgdConfig) -> Self {
        Self {
            config,
            buf: params
                .iter()
                .map(|(_, v)| vec![0f32; v.elem_count()])
                .collect(),
            steps: 0,
        }
    }

    pub fn step(&mut self, params: &Params, grads: &[Vec<f32>], lr: f64) -> Result<()> {
        self.steps += 1;
        let (mu, wd, lr) = (
            self.config.momentum as f32,
            self.config.weight_decay as f32,
            lr as f32,
        );
        let mut values = params.values()?;
        for (k, value) in values.iter_mut().enumerate() {
            let (buf, g) = (&mut self.buf[k], &grads[k]);
            for i in 0..value.len() {
                let d = g[i] + wd * value[i];
                buf[i] = mu * buf[i] + d;
                let update = if self.config.nesterov {
                    d + mu * buf[i]
                } else {
                    buf[i]
                };
                value[i] -= lr * update;
            }
        }
        params.set_values(&values)
    }
}

impl OptimizerState for Sgd {
    fn state(&self, params: &Params) -> Result<(Vec<(String, Tensor)>, u64)> {
        Ok((prefixed(params, "momentum.", &self.buf)?, self.steps))
    }

    fn restore(
        &mut self,
        params: &Params,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        self.buf = lookup(params, "momentum.", tensors)?;
        self.steps = steps;
        Ok(())
    }
}

fn prefixed(params: &Params, prefix: &str, values: &[Vec<f32>]) -> Result<Vec<(String, Tensor)>> {
    Ok(params
        .named(values)?
        .into_iter()
        .map(|(name, t)| (format!("{prefix}{name}"), t))
        .collect())
}

fn lookup(
    params: &Params,
    prefix: &str,
    tensors: &HashMap<String, Tensor>,
) -> Result<Vec<Vec<f32>>> {
    params
        .iter()
        .map(|(name, var)| {
            let key = format!("{prefix}{name}");
            let t = tensors.get(&key).ok_or_else(|| {
                candle_core::Error::Msg(format!("optimizer state has no `{key}`"))
            })?;
            if t.elem_count() != var.elem_count() {
                candle_core::bail!(
                    "optimizer state `{key}` has {} values, expected {}",
                    t.elem_count(),
                    var.elem_count()
                );
            }
            t.flatten_all()?.to_vec1::<f32>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarMap};

    fn quadratic_params() -> (VarMap, Params) {
        let map = VarMap::new();
        map.get((2,), "w", Init::Const(3.0), DType::F32, &Device::Cpu)
            .unwrap();
        let params = Params::from_varmap(&map);
        (map, params)
    }

    /// Minimise |w|^2 / 2 (gradient = w): both optimisers must drive w towards 0.
    #[test]
    fn optimisers_minimise_a_quadratic() {
        let (_m, params) = quadratic_params();
        let mut adam = AdamW::new(&params, AdamWConfig::default());
        for _ in 0..300 {
            let g = params.values().unwrap();
            adam.step(&params, &g, 0.05).unwrap();
        }
        assert!(params.values().unwrap()[0].iter().all(|w| w.abs() < 0.05));

        let (_m, params) = quadratic_params();
        let cfg = SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        };
        let mut sgd = Sgd::new(&params, cfg);
        for _ in 0..200 {
            let g = params.values().unwrap();
            sgd.step(&params, &g, 0.05).unwrap();
        }
        assert!(params.values().unwrap()[0].iter().all(|w| w.abs() < 1e-3));
    }

    /// First AdamW step moves each weight by exactly lr (sign of the gradient), as in
    /// PyTorch: m_hat / sqrt(v_hat) = g / |g|.
    #[test]
    fn adamw_first_step_matches_pytorch_rule() {
        let (_m, params) = quadratic_params();
        let cfg = AdamWConfig {
            weight_decay: 0.1,
            ..AdamWConfig::default()
        };
        let mut adam = AdamW::new(&params, cfg);
        adam.step(&params, &[vec![2.0, -4.0]], 0.01).unwrap();
        let w = &params.values().unwrap()[0];
        assert!((w[0] - (3.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6);
        assert!((w[1] - (3.0 * (1.0 - 0.001) + 0.01)).abs() < 1e-6);
    }

    #[test]
    fn state_round_trips() {
        let (_m, params) = quadratic_params();
        let mut a = AdamW::new(&params, AdamWConfig::default());
        a.step(&params, &[vec![1.0, 2.0]], 0.1).unwrap();
        let (tensors, steps) = a.state(&params).unwrap();
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut b = AdamW::new(&params, AdamWConfig::default());
        b.restore(&params, &map, steps).unwrap();
        assert_eq!(
            (a.m.clone(), a.v.clone(), a.steps),
            (b.m.clone(), b.v.clone(), b.steps)
        );
        map.get("m.w").unwrap();
        let mut c = Sgd::new(
            &params,
            SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        );
        assert!(c.restore(&params, &map, 1).is_err());
    }
}
