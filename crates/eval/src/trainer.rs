//! The classifier training loop: SGD with Nesterov momentum, warm-up + cosine learning
//! rate, soft-label cross-entropy (label smoothing, Mixup / CutMix), real images mixed
//! with their synthetic variants, seeded on-the-fly augmentation, validation after each
//! epoch with best-epoch model selection, and crash-safe per-epoch checkpoints.
//!
//! Model selection uses the validation set only: the test set never enters training. At
//! the end the model holds the weights of the epoch with the best validation accuracy
//! (the earliest on ties), or the last epoch's without a validation set.
//!
//! Resuming is exact: the data order and every augmentation are functions of
//! `(seed, epoch, sample)`, and a checkpoint holds the weights, running statistics,
//! momentum buffers, history and best weights, so a run stopped after any epoch and
//! resumed ends with the same weights as an uninterrupted one.

mod config;
mod state;

pub use config::{BatchMix, TrainConfig};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Tensor;
use semaug_core::seeds::{label, Stream};
use semaug_train::checkpoint::Checkpoints;
use semaug_train::optim::{Sgd, SgdConfig};
use semaug_train::schedule::WarmupCosine;
use semaug_train::{clip_grad_norm, Params};
use serde::{Deserialize, Serialize};

use crate::batch_norm::Mode;
use crate::batches::{augmented_batch, EpochPlan};
use crate::data::{LabeledImages, TrainSet};
use crate::error::EvalError;
use crate::evaluate::{evaluate, model_device};
use crate::loss::{argmax_rows, one_hot, smooth, soft_cross_entropy};
use crate::models::Classifier;

use state::RunState;

/// Validation results after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub loss: f64,
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's (augmented, mixed) batches.
    pub train_loss: f64,
    /// Agreement of the argmax of the logits with the argmax of the targets.
    pub train_accuracy: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Fraction of samples drawn as synthetic variants.
    pub synthetic_fraction: f64,
    pub validation: Option<ValidationRecord>,
}

/// The selected epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    pub epoch: usize,
    pub validation: ValidationRecord,
}

/// Reports handed to the progress callback.
#[derive(Debug, Clone)]
pub enum Progress {
    Step {
        epoch: usize,
        step: u64,
        total_steps: u64,
        loss: f32,
        lr: f64,
    },
    Epoch {
        record: EpochRecord,
        elapsed: Duration,
        checkpoint: Option<PathBuf>,
    },
}

/// The callback's answer: go on, or stop now (resumable from the last checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub history: Vec<EpochRecord>,
    pub best: Option<BestEpoch>,
    /// True when the callback stopped the run before the last epoch.
    pub stopped: bool,
    pub steps: u64,
}

/// Trains a [`Classifier`] in place.
#[derive(Debug)]
pub struct Trainer<'a> {
    model: &'a Classifier,
    config: TrainConfig,
    checkpoints: Option<Checkpoints>,
}

impl<'a> Trainer<'a> {
    pub fn new(model: &'a Classifier, config: TrainConfig) -> Result<Self, EvalError> {
        config.validate()?;
        Ok(Self {
            model,
            config,
            checkpoints: None,
        })
    }

    /// Keep per-epoch checkpoints in `dir` (the newest 2) and resume from the newest.
    pub fn with_checkpoints(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoints = Some(Checkpoints::new(dir, 2));
        self
    }

    /// Batches per epoch: all samples, except that a last batch of a single sample is
    /// dropped (train-mode BatchNorm cannot normalise one value per channel reliably).
    pub fn steps_per_epoch(&self, samples: usize) -> u64 {
        let bs = self.config.batch_size;
        let full = samples / bs;
        let rest = samples % bs;
        (full + usize::from(rest >= 2)) as u64
    }

    /// Runs the remaining epochs. `progress` sees every step and epoch and may stop the
    /// run; training data and validation set must have the model's class count.
    pub fn run(
        &self,
        data: &TrainSet,
        validation: Option<&LabeledImages>,
        mut progress: impl FnMut(&Progress) -> Control,
    ) -> Result<TrainOutcome, EvalError> {
        self.check_data(data, validation)?;
        let (decay, plain) = self.model.decay_groups();
        let mut optim = Optimizers::new(&decay, &plain, &self.config);
        let mut run = match &self.checkpoints {
            Some(ck) => RunState::resume(ck, self.model, &mut optim, &self.config)?,
            None => None,
        }
        .unwrap_or_default();
        let steps_per_epoch = self.steps_per_epoch(data.len());
        let schedule = self.schedule(steps_per_epoch);
        let device = model_device(self.model);
        for epoch in run.epochs_done..self.config.epochs {
            let started = Instant::now();
            let plan = EpochPlan::new(data, self.config.synthetic, self.config.seed, epoch as u64);
            let mut totals = EpochTotals::default();
            let batches = plan
                .order
                .chunks(self.config.batch_size)
                .filter(|b| b.len() >= 2);
            for indices in batches {
                let lr = schedule.at(run.steps);
                let (x, labels) = augmented_batch(
                    data,
                    &plan,
                    indices,
                    &self.config.classical,
                    self.config.seed,
                    epoch as u64,
                    &device,
                )?;
                let stats = self.step(x, &labels, lr, run.steps, &mut optim)?;
                totals.add(&stats, indices.len());
                run.steps += 1;
                let report = Progress::Step {
                    epoch: epoch + 1,
                    step: run.steps,
                    total_steps: steps_per_epoch * self.config.epochs as u64,
                    loss: stats.loss,
                    lr,
                };
                if progress(&report) == Control::Stop {
                    return Ok(run.outcome(true));
                }
            }
            let record = EpochRecord {
                epoch: epoch + 1,
                train_loss: totals.loss(),
                train_accuracy: totals.accuracy(),
                lr: schedule.at(run.steps.saturating_sub(1)),
                synthetic_fraction: plan.synthetic_fraction(),
                validation: self.validate_epoch(epoch + 1, validation)?,
            };
            run.finish_epoch(self.model, record.clone())?;
            let checkpoint = self.checkpoint(&run, &optim, epoch + 1)?;
            let report = Progress::Epoch {
                record,
                elapsed: started.elapsed(),
                checkpoint,
            };
            if progress(&report) == Control::Stop && run.epochs_done < self.config.epochs {
                return Ok(run.outcome(true));
            }
        }
        run.restore_best(self.model)?;
        Ok(run.outcome(false))
    }

    fn check_data(
        &self,
        data: &TrainSet,
        validation: Option<&LabeledImages>,
    ) -> Result<(), EvalError> {
        let k = self.model.config.num_classes;
        let sets = [Some(data.real()), validation];
        for set in sets.into_iter().flatten() {
            if set.num_classes() != k {
                return Err(EvalError::Data {
                    what: "class count",
                    detail: format!("data has {} classes, the model {k}", set.num_classes()),
                });
            }
        }
        if data.len() < 2 {
            let detail = format!("{} training images; at least 2 are needed", data.len());
            return Err(EvalError::Data {
                what: "training set",
                detail,
            });
        }
        Ok(())
    }

    fn schedule(&self, steps_per_epoch: u64) -> WarmupCosine {
        WarmupCosine {
            peak: self.config.lr,
            floor: self.config.min_lr,
            warmup: self.config.warmup_epochs as u64 * steps_per_epoch,
            total: self.config.epochs as u64 * steps_per_epoch,
        }
    }

    /// One optimisation step on a batch `[B, 3, H, W]`.
    fn step(
        &self,
        x: Tensor,
        labels: &[usize],
        lr: f64,
        step: u64,
        optim: &mut Optimizers,
    ) -> Result<StepStats, EvalError> {
        let (x, targets) = self.mix_batch(x, labels, step)?;
        let targets = smooth(&targets, self.config.label_smoothing)?;
        let logits = self.model.forward(&x, Mode::Train)?;
        let loss = soft_cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        optim.step(&grads, lr, self.config.grad_clip)?;
        let predicted = argmax_rows(&logits)?;
        let wanted = argmax_rows(&targets)?;
        let correct = predicted
            .iter()
            .zip(&wanted)
            .filter(|(p, w)| p == w)
            .count();
        Ok(StepStats {
            loss: loss.to_scalar::<f32>()?,
            correct,
        })
    }

    /// Images and `[B, K]` targets after Mixup / CutMix (one-hot without).
    fn mix_batch(
        &self,
        x: Tensor,
        labels: &[usize],
        step: u64,
    ) -> Result<(Tensor, Tensor), EvalError> {
        let k = self.model.config.num_classes;
        let ids = || {
            let ids: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            Tensor::from_vec(ids, labels.len(), x.device())
        };
        let mut rng = Stream::new(self.config.seed, step, label("trainer/batch-mix"), 0);
        let mixed = match &self.config.batch_mix {
            BatchMix::None => return Ok((x.clone(), one_hot(labels, k, x.device())?)),
            BatchMix::Mixup(m) => m.apply(&x, &ids()?, k, &mut rng)?,
            BatchMix::Cutmix(c) => c.apply(&x, &ids()?, k, &mut rng)?,
        };
        Ok((mixed.images, mixed.labels))
    }

    fn validate_epoch(
        &self,
        epoch: usize,
        validation: Option<&LabeledImages>,
    ) -> Result<Option<ValidationRecord>, EvalError> {
        let due = epoch.is_multiple_of(self.config.eval_every) || epoch == self.config.epochs;
        let Some(set) = validation.filter(|_| due) else {
            return Ok(None);
        };
        let result = evaluate(self.model, set, self.config.eval_batch_size)?;
        Ok(Some(ValidationRecord {
            accuracy: result.accuracy(),
            balanced_accuracy: result.balanced_accuracy(),
            loss: result.loss,
        }))
    }

    fn checkpoint(
        &self,
        run: &RunState,
        optim: &Optimizers,
        epoch: usize,
    ) -> Result<Option<PathBuf>, EvalError> {
        let due = epoch.is_multiple_of(self.config.checkpoint_every) || epoch == self.config.epochs;
        match (&self.checkpoints, due) {
            (Some(ck), true) => Ok(Some(run.save(ck, self.model, optim, &self.config)?)),
            _ => Ok(None),
        }
    }
}

/// Loss and hits of one step.
struct StepStats {
    loss: f32,
    correct: usize,
}

#[derive(Default)]
struct EpochTotals {
    loss_sum: f64,
    correct: usize,
    samples: usize,
}

impl EpochTotals {
    fn add(&mut self, step: &StepStats, batch: usize) {
        self.loss_sum += f64::from(step.loss) * batch as f64;
        self.correct += step.correct;
        self.samples += batch;
    }

    fn loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }
}

/// SGD over the two parameter groups (with and without weight decay).
pub(crate) struct Optimizers {
    decay: Params,
    plain: Params,
    decay_sgd: Sgd,
    plain_sgd: Sgd,
}

impl Optimizers {
    fn new(decay: &Params, plain: &Params, config: &TrainConfig) -> Self {
        let sgd = |weight_decay| SgdConfig {
            momentum: config.momentum,
            nesterov: config.nesterov,
            weight_decay,
        };
        Self {
            decay_sgd: Sgd::new(decay, sgd(config.weight_decay)),
            plain_sgd: Sgd::new(plain, sgd(0.0)),
            decay: decay.clone(),
            plain: plain.clone(),
        }
    }

    fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        clip: Option<f64>,
    ) -> Result<(), EvalError> {
        let mut all = self.decay.gradients(grads)?;
        let split = all.len();
        all.extend(self.plain.gradients(grads)?);
        if let Some(max_norm) = clip {
            clip_grad_norm(&mut all, max_norm);
        }
        let (decay_grads, plain_grads) = all.split_at(split);
        self.decay_sgd.step(&self.decay, decay_grads, lr)?;
        self.plain_sgd.step(&self.plain, plain_grads, lr)?;
        Ok(())
    }
}
