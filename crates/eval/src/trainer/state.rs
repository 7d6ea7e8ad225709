//! The state of a training run between epochs, and its checkpoint form: groups `model`
//! (weights and running statistics), `optimizer` (momentum buffers) and `best` (the
//! selected epoch's weights), plus `state.json` with the history and the config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use semaug_train::checkpoint::Checkpoints;
use semaug_train::optim::OptimizerState;
use serde::{Deserialize, Serialize};

use super::{BestEpoch, EpochRecord, Optimizers, TrainConfig, TrainOutcome};
use crate::error::EvalError;
use crate::models::Classifier;

/// The selected epoch and a copy of its weights.
#[derive(Debug, Clone)]
struct Best {
    epoch: BestEpoch,
    weights: Vec<(String, Tensor)>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct RunState {
    pub epochs_done: usize,
    pub steps: u64,
    history: Vec<EpochRecord>,
    best: Option<Best>,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    epochs_done: usize,
    steps: u64,
    history: Vec<EpochRecord>,
    best: Option<BestEpoch>,
    config: TrainConfig,
}

impl RunState {
    /// Records a finished epoch; keeps its weights when its validation accuracy beats
    /// every earlier epoch's.
    pub fn finish_epoch(
        &mut self,
        model: &Classifier,
        record: EpochRecord,
    ) -> Result<(), EvalError> {
        if let Some(validation) = record.validation {
            let better = match &self.best {
                Some(best) => validation.accuracy > best.epoch.validation.accuracy,
                None => true,
            };
            if better {
                self.best = Some(Best {
                    epoch: BestEpoch {
                        epoch: record.epoch,
                        validation,
                    },
                    weights: model.state()?,
                });
            }
        }
        self.history.push(record);
        self.epochs_done += 1;
        Ok(())
    }

    /// Puts the selected epoch's weights into the model (no-op without validation).
    pub fn restore_best(&self, model: &Classifier) -> Result<(), EvalError> {
        match &self.best {
            Some(best) => {
                let map: HashMap<String, Tensor> = best.weights.iter().cloned().collect();
                model.set_state(&map, Path::new("<best epoch weights>"))
            }
            None => Ok(()),
        }
    }

    pub fn outcome(&self, stopped: bool) -> TrainOutcome {
        TrainOutcome {
            history: self.history.clone(),
            best: self.best.as_ref().map(|b| b.epoch),
            stopped,
            steps: self.steps,
        }
    }

    pub fn save(
        &self,
        ck: &Checkpoints,
        model: &Classifier,
        optim: &Optimizers,
        config: &TrainConfig,
    ) -> Result<PathBuf, EvalError> {
        let (mut optimizer, _) = optim.decay_sgd.state(&optim.decay)?;
        optimizer.extend(optim.plain_sgd.state(&optim.plain)?.0);
        let mut groups = vec![("model", model.state()?), ("optimizer", optimizer)];
        if let Some(best) = &self.best {
            groups.push(("best", best.weights.clone()));
        }
        let saved = Saved {
            epochs_done: self.epochs_done,
            steps: self.steps,
            history: self.history.clone(),
            best: self.best.as_ref().map(|b| b.epoch),
            config: config.clone(),
        };
        let json = serde_json::to_value(&saved).map_err(|e| EvalError::Data {
            what: "checkpoint state",
            detail: e.to_string(),
        })?;
        Ok(ck.save(self.steps, &groups, &json)?)
    }

    /// The newest checkpoint in `ck` loaded into `model` and `optim`, or `None`.
    pub fn resume(
        ck: &Checkpoints,
        model: &Classifier,
        optim: &mut Optimizers,
        config: &TrainConfig,
    ) -> Result<Option<Self>, EvalError> {
        let Some(found) = ck.latest()? else {
            return Ok(None);
        };
        let saved: Saved =
            serde_json::from_value(found.state.clone()).map_err(|e| EvalError::Data {
                what: "checkpoint state",
                detail: format!("{}: {e}", found.dir.join("state.json").display()),
            })?;
        if saved.config != *config {
            return Err(EvalError::CheckpointMismatch {
                dir: ck.dir.clone(),
                what: "training config",
            });
        }
        model.set_state(&found.tensors("model")?, &found.dir)?;
        let optimizer = found.tensors("optimizer")?;
        optim
            .decay_sgd
            .restore(&optim.decay, &optimizer, saved.steps)?;
        optim
            .plain_sgd
            .restore(&optim.plain, &optimizer, saved.steps)?;
        let best = match saved.best {
            Some(epoch) => {
                let mut weights: Vec<(String, Tensor)> =
                    found.tensors("best")?.into_iter().collect();
                weights.sort_by(|a, b| a.0.cmp(&b.0));
                Some(Best { epoch, weights })
            }
            None => None,
        };
        Ok(Some(Self {
            epochs_done: saved.epochs_done,
            steps: saved.steps,
            history: saved.history,
            best,
        }))
    }
}
