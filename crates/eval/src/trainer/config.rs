//! [`TrainConfig`]: everything that decides a training run, with defaults and checks.

use semaug_data::augment::{Classical, CutMix, Mixup};
use serde::{Deserialize, Serialize};

use crate::batches::SyntheticMix;
use crate::error::{ensure, EvalError};

/// Batch-level mixing applied after the per-sample augmentation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMix {
    #[default]
    None,
    Mixup(Mixup),
    Cutmix(CutMix),
}

/// Everything that decides a training run. Defaults: the common CIFAR recipe (SGD 0.1,
/// momentum 0.9 + Nesterov, weight decay 5e-4, batch 128, crop + flip) over 30 epochs
/// with 2 of warm-up, and DA-Fusion's 0.5 synthetic probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate, reached at the end of the warm-up.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    pub warmup_epochs: usize,
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 weight decay on conv and linear weights (not BatchNorm or biases).
    pub weight_decay: f64,
    /// `eps` of `(1 - eps) * target + eps / K`.
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Per-sample augmentation of every training input (size-preserving transforms).
    pub classical: Classical,
    pub batch_mix: BatchMix,
    pub synthetic: SyntheticMix,
    pub seed: u64,
    /// Evaluate on the validation set every this many epochs (and after the last).
    pub eval_every: usize,
    /// Write a checkpoint every this many epochs (and after the last).
    pub checkpoint_every: usize,
    pub eval_batch_size: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 128,
            lr: 0.1,
            min_lr: 0.0,
            warmup_epochs: 2,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            label_smoothing: 0.0,
            grad_clip: None,
            classical: Classical::default(),
            batch_mix: BatchMix::None,
            synthetic: SyntheticMix::default(),
            seed: 0,
            eval_every: 1,
            checkpoint_every: 1,
            eval_batch_size: 256,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), EvalError> {
        ensure(
            (1..=100_000).contains(&self.epochs),
            "epochs",
            self.epochs,
            "1..=100000",
        )?;
        let bs = self.batch_size;
        ensure((2..=65_536).contains(&bs), "batch size", bs, "2..=65536")?;
        let eval_bs = self.eval_batch_size;
        ensure(
            (1..=65_536).contains(&eval_bs),
            "eval batch size",
            eval_bs,
            "1..=65536",
        )?;
        let lr_ok = self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0;
        ensure(lr_ok, "learning rate", self.lr, "0 < lr <= 10")?;
        let floor_ok = self.min_lr.is_finite() && (0.0..=self.lr).contains(&self.min_lr);
        ensure(floor_ok, "minimum learning rate", self.min_lr, "0..=lr")?;
        let warmup = self.warmup_epochs;
        ensure(
            warmup <= self.epochs,
            "warm-up epochs",
            warmup,
            "0..=epochs",
        )?;
        let momentum_ok = (0.0..1.0).contains(&self.momentum);
        ensure(momentum_ok, "momentum", self.momentum, "0 <= momentum < 1")?;
        let wd_ok = (0.0..=1.0).contains(&self.weight_decay);
        ensure(wd_ok, "weight decay", self.weight_decay, "0..=1")?;
        let ls_ok = (0.0..1.0).contains(&self.label_smoothing);
        ensure(
            ls_ok,
            "label smoothing",
            self.label_smoothing,
            "0 <= eps < 1",
        )?;
        if let Some(clip) = self.grad_clip {
            let ok = clip.is_finite() && clip > 0.0;
            ensure(ok, "gradient clipping norm", clip, "> 0")?;
        }
        ensure(self.eval_every >= 1, "eval_every", self.eval_every, ">= 1")?;
        let ck = self.checkpoint_every;
        ensure(ck >= 1, "checkpoint_every", ck, ">= 1")?;
        self.classical.validate()?;
        match &self.batch_mix {
            BatchMix::None => {}
            BatchMix::Mixup(m) => m.validate()?,
            BatchMix::Cutmix(c) => c.validate()?,
        }
        self.synthetic.validate()
    }
}
