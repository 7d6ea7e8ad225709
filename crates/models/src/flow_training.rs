//! Conditional flow-matching training of the embedded UNet, resumable to the bit.
//!
//! Loss: `|| v_theta(x_sigma, sigma, y) - (eps - x0) ||^2` with
//! `x_sigma = (1 - sigma) x0 + sigma eps` (the convention of `semaug_core::time`).
//! Sigma is drawn per sample, logit-normal by default (`sigma = sigmoid(m + s z)`,
//! Esser et al. 2024, which puts more steps at mid noise where the velocity is hardest)
//! or uniform. Labels are replaced by the null class with probability `label_dropout`
//! so the same network also gives the unconditional velocity for guidance; unlabeled
//! images always carry the null class.
//!
//! Every random draw of step `k` comes from streams keyed by `(seed, k)`, and the data
//! order of epoch `e` from a permutation keyed by `(seed, e)`. A checkpoint stores the
//! weights, the EMA weights, the optimiser moments and the step, so a run killed at any
//! point and resumed reaches exactly the weights of an uninterrupted run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use semaug_data::dataset::{Dataset, Sample};
use semaug_data::image_io::Limits;

use semaug_core::seeds::{label, Stream};
use semaug_train::checkpoint::{Checkpoints, Found};
use semaug_train::ema::Ema;
use semaug_train::optim::{AdamW, AdamWConfig, OptimizerState};
use semaug_train::schedule::WarmupCosine;
use semaug_train::{clip_grad_norm, Params};

use crate::unet::{UNet2DConfig, UNet2DModel, UnetError, WeightsDtype};

/// How training draws sigma for each sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SigmaSampling {
    /// `sigmoid(mean + std * z)`, `z ~ N(0, 1)`.
    LogitNormal {
        mean: f64,
        std: f64,
    },
    Uniform,
}

impl SigmaSampling {
    fn draw(&self, rng: &mut Stream) -> f64 {
        match *self {
            Self::LogitNormal { mean, std } => {
                1.0 / (1.0 + (-(mean + std * rng.normal() as f64)).exp())
            }
            Self::Uniform => rng.uniform_f64(),
        }
    }
}

/// Everything that fixes a training run's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowTrainConfig {
    pub model: UNet2DConfig,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: u64,
    /// Length of the cosine schedule; training stops here unless a time budget ends it first.
    pub total_steps: u64,
    pub sigma_sampling: SigmaSampling,
    pub label_dropout: f64,
    pub ema_decay: f64,
    pub grad_clip: f64,
    pub weight_decay: f64,
    /// Random horizontal flips of the training images.
    pub flip: bool,
    pub checkpoint_every: u64,
    pub seed: u64,
}

impl FlowTrainConfig {
    pub fn new(model: UNet2DConfig) -> Self {
        Self {
            model,
            batch_size: 64,
            learning_rate: 2e-4,
            warmup_steps: 200,
            total_steps: 100_000,
            sigma_sampling: SigmaSampling::LogitNormal {
                mean: 0.0,
                std: 1.0,
            },
            label_dropout: 0.1,
            ema_decay: 0.999,
            grad_clip: 1.0,
            weight_decay: 0.0,
            flip: true,
            checkpoint_every: 200,
            seed: 0,
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let bad =
            |field: &str, valid: &str| Err(TrainError::Config(format!("{field} must be {valid}")));
        if self.batch_size == 0 {
            return bad("batch_size", "at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad("learning_rate", "in (0, 1)");
        }
        if !(0.0..1.0).contains(&self.label_dropout) {
            return bad("label_dropout", "in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("ema_decay", "in [0, 1)");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "at least 1");
        }
        if self.model.null_class().is_none() {
            return bad(
                "model.num_class_embeds",
                "set (classes + 1 null row) for guidance training",
            );
        }
        Ok(())
    }
}

/// Training images, already at the model's resolution, as u8 NCHW planes.
#[derive(Debug, Clone)]
pub struct TrainImages {
    /// `[N * 3 * H * W]` u8, sample-major, channel planes.
    pub pixels: Vec<u8>,
    /// Class index per image, `None` for unlabeled (null class).
    pub labels: Vec<Option<usize>>,
    pub height: usize,
    pub width: usize,
}

impl TrainImages {
    /// Images `[N, 3, H, W]` in [-1, 1] (e.g. a generator's decoded samples), all of
    /// class `class`, quantised to u8 as a PNG would store them.
    pub fn from_tensor(images: &Tensor, class: Option<usize>) -> candle_core::Result<Self> {
        let (n, _, height, width) = images.dims4()?;
        let pixels = ((images.clamp(-1f32, 1f32)? + 1.0)? * 127.5)?
            .round()?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v as u8)
            .collect();
        Ok(Self {
            pixels,
            labels: vec![class; n],
            height,
            width,
        })
    }

    /// Decode a labeled dataset and an optional unlabeled pool (its samples become the
    /// null class) at `height x width`, resizing any image of another size (Lanczos).
    pub fn load(
        labeled: &Dataset,
        pool: Option<&Dataset>,
        (height, width): (usize, usize),
        limits: &Limits,
    ) -> Result<Self, TrainError> {
        let samples: Vec<(&Sample, Option<usize>)> = labeled
            .samples
            .iter()
            .map(|s| (s, s.class))
            .chain(
                pool.into_iter()
                    .flat_map(|p| p.samples.iter().map(|s| (s, None))),
            )
            .collect();
        let planes: Vec<Vec<u8>> = samples
            .par_iter()
            .map(|(sample, _)| {
                let image = sample
                    .load_image(limits)
                    .map_err(|e| TrainError::Data(e.to_string()))?;
                Ok(planar(&fit(image, width as u32, height as u32)))
            })
            .collect::<Result<_, TrainError>>()?;
        Ok(Self {
            pixels: planes.concat(),
            labels: samples.iter().map(|(_, c)| *c).collect(),
            height,
            width,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training config: {0}")]
    Config(String),
    #[error("training data: {0}")]
    Data(String),
    #[error(transparent)]
    Unet(#[from] UnetError),
    #[error(transparent)]
    Checkpoint(#[from] semaug_train::checkpoint::CheckpointError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(
        "{dir}: holds a run with different settings ({detail}); use a new --out, or delete the folder to start over"
    )]
    Mismatch { dir: PathBuf, detail: String },
}

/// What one call of [`train`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSummary {
    pub start_step: u64,
    pub end_step: u64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Mean loss per logged window: (step, loss).
    pub loss_history: Vec<(u64, f64)>,
}

/// Called after every step with (step, loss, images/s) for progress display.
pub type Progress<'a> = &'a mut dyn FnMut(u64, f64, f64);

/// When this call of [`train`] stops before `total_steps` (a run continues across calls).
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    pub deadline: Option<Instant>,
    /// At most this many steps in this call.
    pub max_steps: Option<u64>,
}

/// Train (or resume) in `out` until `total_steps` or until the budget is spent.
/// Checkpoints go to `out/checkpoints/`; call [`export_ema`] for the shippable model.
pub fn train(
    config: &FlowTrainConfig,
    data: &TrainImages,
    out: &Path,
    budget: Budget,
    progress: Progress,
) -> Result<TrainSummary, TrainError> {
    config.validate()?;
    check_data(config, data)?;
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = UNet2DModel::trainable(&config.model, &varmap, config.seed, &device)?;
    let mut live = Live::new(config, Params::from_varmap(&varmap))?;
    let checkpoints = Checkpoints::new(out.join("checkpoints"), 2);
    let start_step = live.resume(config, &checkpoints, out)?;
    let schedule = WarmupCosine {
        peak: config.learning_rate,
        floor: config.learning_rate * 0.1,
        warmup: config.warmup_steps,
        total: config.total_steps,
    };
    let started = Instant::now();
    let mut window = LossWindow::default();
    let mut step = start_step;
    let last = budget.max_steps.map_or(config.total_steps, |n| {
        (start_step + n).min(config.total_steps)
    });
    while step < last && budget.deadline.is_none_or(|d| Instant::now() < d) {
        let (x0, labels) = batch(config, data, step, &device)?;
        let loss = flow_matching_loss(&model, config, &x0, &labels, step)?;
        let grads = loss.backward()?;
        let mut grads = live.params.gradients(&grads)?;
        clip_grad_norm(&mut grads, config.grad_clip);
        live.optimizer
            .step(&live.params, &grads, schedule.at(step))?;
        live.ema.update(&live.params)?;
        step += 1;
        let loss = loss.to_scalar::<f32>()? as f64;
        if let Some(mean) = window.push(loss, step) {
            live.history.push((step, mean));
        }
        let done = (step - start_step) as f64 * config.batch_size as f64;
        progress(step, loss, done / started.elapsed().as_secs_f64().max(1e-9));
        if step % config.checkpoint_every == 0 {
            live.save(config, &checkpoints, step)?;
        }
    }
    if step % config.checkpoint_every != 0 || step == start_step {
        live.save(config, &checkpoints, step)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TrainSummary {
        start_step,
        end_step: step,
        seconds,
        images_per_second: (step - start_step) as f64 * config.batch_size as f64
            / seconds.max(1e-9),
        loss_history: live.history,
    })
}

/// The loss of one batch: per-sample sigma, noise and label dropout keyed by the step.
fn flow_matching_loss(
    model: &UNet2DModel,
    config: &FlowTrainConfig,
    x0: &Tensor,
    labels: &[Option<usize>],
    step: u64,
) -> Result<Tensor, TrainError> {
    let b = labels.len();
    let null = config.model.null_class().unwrap_or(0);
    let mut rng = Stream::new(config.seed, step, label("train/sigma-label"), 0);
    let sigmas: Vec<f32> = (0..b)
        .map(|_| config.sigma_sampling.draw(&mut rng) as f32)
        .collect();
    let ids: Vec<u32> = labels
        .iter()
        .map(|l| match l {
            Some(c) if !rng.bernoulli(config.label_dropout as f32) => *c as u32,
            _ => null as u32,
        })
        .collect();
    let eps = Stream::new(config.seed, step, label("train/noise"), 0)
        .normal_tensor(x0.shape(), x0.device())?;
    let sigma = Tensor::from_vec(sigmas.clone(), b, x0.device())?;
    let x_sigma = semaug_core::time::noised_per_sample(x0, &eps, &sigma)?;
    let target = semaug_core::time::velocity_target(x0, &eps)?;
    let timesteps = (sigma * 1000.0)?;
    let ids = Tensor::from_vec(ids, b, x0.device())?;
    let v = model.forward(&x_sigma, &timesteps, Some(&ids))?;
    Ok((v - target)?.sqr()?.mean_all()?)
}

/// The images of step `step`: positions `[step * B, (step + 1) * B)` of the stream of
/// epoch permutations, with seeded flips.
fn batch(
    config: &FlowTrainConfig,
    data: &TrainImages,
    step: u64,
    device: &Device,
) -> Result<(Tensor, Vec<Option<usize>>), TrainError> {
    let n = data.len() as u64;
    let b = config.batch_size as u64;
    let plane = 3 * data.height * data.width;
    let mut pixels = Vec::with_capacity(config.batch_size * plane);
    let mut labels = Vec::with_capacity(config.batch_size);
    let mut flips = Stream::new(config.seed, step, label("train/flip"), 0);
    let mut perm: Option<(u64, Vec<usize>)> = None;
    for pos in step * b..(step + 1) * b {
        let epoch = pos / n;
        if perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..data.len()).collect();
            Stream::new(config.seed, epoch, label("train/shuffle"), 0).shuffle(&mut order);
            perm = Some((epoch, order));
        }
        let index = perm
            .as_ref()
            .map(|(_, p)| p[(pos % n) as usize])
            .unwrap_or(0);
        let image = &data.pixels[index * plane..(index + 1) * plane];
        let flip = config.flip && flips.bernoulli(0.5);
        push_image(&mut pixels, image, data.width, flip);
        labels.push(data.labels[index]);
    }
    let x0 = Tensor::from_vec(
        pixels,
        (config.batch_size, 3, data.height, data.width),
        device,
    )?;
    Ok((x0, labels))
}

fn push_image(out: &mut Vec<f32>, image: &[u8], width: usize, flip: bool) {
    for row in image.chunks_exact(width) {
        let to_unit = |v: &u8| 2.0 * (*v as f32 / 255.0) - 1.0;
        if flip {
            out.extend(row.iter().rev().map(to_unit));
        } else {
            out.extend(row.iter().map(to_unit));
        }
    }
}

fn fit(image: RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        image
    } else {
        image::imageops::resize(&image, width, height, image::imageops::FilterType::Lanczos3)
    }
}

/// HWC u8 -> CHW u8.
fn planar(image: &RgbImage) -> Vec<u8> {
    let plane = (image.width() * image.height()) as usize;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c];
        }
    }
    out
}

fn check_data(config: &FlowTrainConfig, data: &TrainImages) -> Result<(), TrainError> {
    let Some(size) = config.model.sample_size else {
        return Err(TrainError::Config(
            "model.sample_size must be set to train".into(),
        ));
    };
    let (h, w) = size.hw();
    if data.is_empty() {
        return Err(TrainError::Data("no training images".into()));
    }
    if (data.height, data.width) != (h, w) || data.pixels.len() != data.len() * 3 * h * w {
        return Err(TrainError::Data(format!(
            "images must be {h}x{w} RGB (the model's sample_size); got {}x{}",
            data.height, data.width
        )));
    }
    let classes = config.model.null_class().unwrap_or(0);
    if let Some(bad) = data.labels.iter().flatten().find(|c| **c >= classes) {
        return Err(TrainError::Data(format!(
            "label {bad} needs a class embedding row; the model has {classes} classes + null"
        )));
    }
    Ok(())
}

#[derive(Default)]
struct LossWindow {
    sum: f64,
    count: u64,
}

impl LossWindow {
    const SIZE: u64 = 20;

    fn push(&mut self, loss: f64, step: u64) -> Option<f64> {
        self.sum += loss;
        self.count += 1;
        (step % Self::SIZE == 0).then(|| {
            let mean = self.sum / self.count as f64;
            *self = Self::default();
            mean
        })
    }
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    step: u64,
    config: FlowTrainConfig,
    ema_updates: u64,
    optimizer_steps: u64,
    loss_history: Vec<(u64, f64)>,
}

/// The state a checkpoint holds besides the config: weights, optimiser, EMA, losses.
struct Live {
    params: Params,
    optimizer: AdamW,
    ema: Ema,
    history: Vec<(u64, f64)>,
}

impl Live {
    fn new(config: &FlowTrainConfig, params: Params) -> Result<Self, TrainError> {
        let adamw = AdamWConfig {
            weight_decay: config.weight_decay,
            ..AdamWConfig::default()
        };
        Ok(Self {
            optimizer: AdamW::new(&params, adamw),
            ema: Ema::new(&params, config.ema_decay)?,
            params,
            history: Vec::new(),
        })
    }

    fn save(
        &self,
        config: &FlowTrainConfig,
        checkpoints: &Checkpoints,
        step: u64,
    ) -> Result<(), TrainError> {
        let (moments, optimizer_steps) = self.optimizer.state(&self.params)?;
        let model = self.params.named(&self.params.values()?)?;
        let shadow = self.params.named(&self.ema.shadow)?;
        let state = SavedState {
            step,
            config: config.clone(),
            ema_updates: self.ema.updates,
            optimizer_steps,
            loss_history: self.history.clone(),
        };
        let state = serde_json::to_value(&state).map_err(|e| TrainError::Config(e.to_string()))?;
        checkpoints.save(
            step,
            &[("model", model), ("ema", shadow), ("optimizer", moments)],
            &state,
        )?;
        Ok(())
    }

    /// Restore the newest checkpoint (if any); returns its step (0 without one).
    fn resume(
        &mut self,
        config: &FlowTrainConfig,
        checkpoints: &Checkpoints,
        out: &Path,
    ) -> Result<u64, TrainError> {
        let Some(found) = checkpoints.latest()? else {
            return Ok(0);
        };
        let saved = saved_state(&found)?;
        // The time budget and schedule length may change between sessions; nothing else.
        let comparable = |c: &FlowTrainConfig| FlowTrainConfig {
            total_steps: 0,
            checkpoint_every: 0,
            ..c.clone()
        };
        if comparable(&saved.config) != comparable(config) {
            return Err(TrainError::Mismatch {
                dir: out.to_owned(),
                detail: "model, data handling or optimiser settings differ".into(),
            });
        }
        self.params
            .set_values(&by_name(&self.params, &found, "model")?)?;
        self.ema.shadow = by_name(&self.params, &found, "ema")?;
        self.ema.updates = saved.ema_updates;
        self.optimizer.restore(
            &self.params,
            &found.tensors("optimizer")?,
            saved.optimizer_steps,
        )?;
        self.history = saved.loss_history;
        Ok(saved.step)
    }
}

fn saved_state(found: &Found) -> Result<SavedState, TrainError> {
    serde_json::from_value(found.state.clone())
        .map_err(|e| TrainError::Config(format!("{}: {e}", found.dir.display())))
}

/// A checkpoint group's tensors as flat vectors in `params` order.
fn by_name(params: &Params, found: &Found, group: &str) -> Result<Vec<Vec<f32>>, TrainError> {
    let tensors = found.tensors(group)?;
    params
        .iter()
        .map(|(name, _)| {
            let t = tensors.get(name).ok_or_else(|| {
                TrainError::Config(format!("{}: `{group}` lacks `{name}`", found.dir.display()))
            })?;
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        })
        .collect()
}

/// The loss history `(step, mean loss of the last 20 steps)` of the newest checkpoint.
pub fn loss_history(out: &Path) -> Result<Vec<(u64, f64)>, TrainError> {
    let checkpoints = Checkpoints::new(out.join("checkpoints"), 2);
    match checkpoints.latest()? {
        Some(found) => Ok(saved_state(&found)?.loss_history),
        None => Ok(Vec::new()),
    }
}

/// Write the newest checkpoint's EMA weights as a diffusers `UNet2DModel` directory
/// (`config.json` + `diffusion_pytorch_model.safetensors`, f16 when `half`); returns the
/// model and the checkpoint's step.
pub fn export_ema(out: &Path, dest: &Path, half: bool) -> Result<(UNet2DModel, u64), TrainError> {
    let checkpoints = Checkpoints::new(out.join("checkpoints"), 2);
    let found = checkpoints
        .latest()?
        .ok_or_else(|| TrainError::Data(format!("{}: no checkpoint to export", out.display())))?;
    let saved = saved_state(&found)?;
    let ema = found.tensors("ema")?;
    let mut model = UNet2DModel::from_tensors(&saved.config.model, ema, &Device::Cpu)?;
    let dtype = if half {
        WeightsDtype::F16
    } else {
        WeightsDtype::F32
    };
    model.save(dest, dtype)?;
    Ok((model, saved.step))
}
