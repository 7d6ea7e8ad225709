//! semaug-train: the training toolkit shared by the generator and the classifiers.
//!
//! Principal types: [`Params`] (a model's trainable variables in a fixed, named order),
//! [`optim::AdamW`] and [`optim::Sgd`] (with their state exposed, so a checkpoint
//! resumes exactly), [`schedule::WarmupCosine`], [`ema::Ema`], and
//! [`checkpoint::Checkpoints`]. Key decision: updates run as plain loops over `f32`
//! slices rather than as candle graphs, which makes them cheap, deterministic and
//! serialisable; candle is used for the forward and backward passes only.

pub mod checkpoint;
pub mod ema;
pub mod optim;
pub mod schedule;

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use candle_nn::VarMap;

/// A model's trainable variables, sorted by name so every run visits them in the
/// same order (a `VarMap` is a hash map).
#[derive(Debug, Clone)]
pub struct Params {
    entries: Vec<(String, Var)>,
}

impl Params {
    pub fn from_varmap(map: &VarMap) -> Self {
        let data = map.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Self { entries }
    }

    /// Only the variables whose name satisfies `keep` (e.g. to freeze the rest).
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> Self {
        let entries = self
            .entries
            .iter()
            .filter(|(n, _)| keep(n))
            .cloned()
            .collect();
        Self { entries }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn element_count(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The gradient of every variable as a flat vector (zeros where the graph did not
    /// reach a variable).
    pub fn gradients(&self, grads: &GradStore) -> Result<Vec<Vec<f32>>> {
        self.entries
            .iter()
            .map(|(_, var)| match grads.get(var.as_tensor()) {
                Some(g) => flat(g),
                None => Ok(vec![0.0; var.elem_count()]),
            })
            .collect()
    }

    /// Current values as flat vectors.
    pub fn values(&self) -> Result<Vec<Vec<f32>>> {
        self.entries
            .iter()
            .map(|(_, var)| flat(var.as_tensor()))
            .collect()
    }

    /// Overwrite every variable from flat vectors (same order and sizes as `values`).
    pub fn set_values(&self, values: &[Vec<f32>]) -> Result<()> {
        for ((_, var), data) in self.entries.iter().zip(values) {
            var.set(&Tensor::from_slice(data, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    /// Named tensors built from flat vectors in this order (for saving state).
    pub fn named(&self, values: &[Vec<f32>]) -> Result<Vec<(String, Tensor)>> {
        self.entries
            .iter()
            .zip(values)
            .map(|((name, var), data)| {
                Ok((
                    name.clone(),
                    Tensor::from_slice(data, var.shape(), var.device())?,
                ))
            })
            .collect()
    }
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

/// Scale all gradients so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping (PyTorch's `clip_grad_norm_`).
pub fn clip_grad_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if norm > max_norm && norm > 0.0 {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        grads
            .iter_mut()
            .flat_map(|g| g.iter_mut())
            .for_each(|x| *x *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm_and_keeps_direction() {
        let mut g = vec![vec![3.0f32, 0.0], vec![4.0]];
        let before = clip_grad_norm(&mut g, 1.0);
        assert!((before - 5.0).abs() < 1e-9);
        assert!((g[0][0] - 0.6).abs() < 1e-5 && (g[1][0] - 0.8).abs() < 1e-5);
        let mut small = vec![vec![0.1f32]];
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small[0][0], 0.1);
    }
}
