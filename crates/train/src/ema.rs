//! Exponential moving average of the weights: the weights that get shipped.

use candle_core::Result;

use crate::Params;

/// `shadow <- d * shadow + (1 - d) * param` after each step, with the usual warm-up
/// `d_k = min(decay, (1 + k) / (10 + k))` so early averages are not dominated by the
/// random initialisation.
#[derive(Debug, Clone)]
pub struct Ema {
    pub decay: f64,
    pub shadow: Vec<Vec<f32>>,
    pub updates: u64,
}

impl Ema {
    pub fn new(params: &Params, decay: f64) -> Result<Self> {
        Ok(Self {
            decay,
            shadow: params.values()?,
            updates: 0,
        })
    }

    pub fn update(&mut self, params: &Params) -> Result<()> {
        let k = self.updates as f64;
        let d = self.decay.min((1.0 + k) / (10.0 + k)) as f32;
        for (shadow, value) in self.shadow.iter_mut().zip(params.values()?) {
            for (s, v) in shadow.iter_mut().zip(value) {
                *s = d * *s + (1.0 - d) * v;
            }
        }
        self.updates += 1;
        Ok(())
    }
}
