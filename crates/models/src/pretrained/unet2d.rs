//! A diffusers `UNet2DModel` trained as a DDPM/DDIM denoiser (e.g. `google/ddpm-cifar10-32`)
//! behind the [`Generator`] seam, in pixel space.
//!
//! The network predicts noise (or `v`, or the sample, as its scheduler config says) at
//! integer timesteps of a VP schedule; the [`VpSchedule`] adapter turns that into a flow
//! velocity. Conditions become rows added to the time embedding, as in the embedded
//! backend: a class-conditional model (`num_class_embeds`) takes its class rows (the null
//! condition is the last row, as this project trains them) and learned concept rows; an
//! unconditional model has one all-zero row, which every class shares, so guidance
//! has no effect on it.
//!
//! Weights may be f16 / bf16 ([`Unet2dGenerator::load_as`]): the state, the VP scaling and
//! the velocity stay f32; only the network's input and output are cast.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use semaug_core::{Condition, Generator, GeneratorInfo, SigmaGrid};

use super::error::PretrainedError;
use super::vp::VpSchedule;
use crate::conditions::ClassRows;
use crate::embedded::CLASSES_FILE;
use crate::sd::DdimSchedule;
use crate::unet::UNet2DModel;

/// What a UNet2D generator says of a text prompt.
const PROMPT_HINT: &str = "the model is not text-conditional";

/// A pixel-space VP denoiser with its noise schedule.
#[derive(Debug, Clone)]
pub struct Unet2dGenerator {
    unet: UNet2DModel,
    schedule: VpSchedule,
    name: String,
    /// Class names in label order (class-conditional models; empty otherwise).
    pub classes: Vec<String>,
    /// Learned concept rows `[T]` by token name (class-conditional models).
    pub concepts: BTreeMap<String, Tensor>,
}

impl Unet2dGenerator {
    pub fn new(
        unet: UNet2DModel,
        schedule: VpSchedule,
        name: String,
        classes: Vec<String>,
    ) -> Self {
        Self {
            unet,
            schedule,
            name,
            classes,
            concepts: BTreeMap::new(),
        }
    }

    /// Loads the UNet from `unet_dir` (`config.json` + `diffusion_pytorch_model.safetensors`,
    /// with an optional `classes.json`) and the schedule from
    /// `scheduler_dir/scheduler_config.json` (a DDPM or DDIM scheduler config).
    pub fn load(
        unet_dir: &Path,
        scheduler_dir: &Path,
        device: &Device,
    ) -> Result<Self, PretrainedError> {
        Self::load_as(unet_dir, scheduler_dir, device, DType::F32)
    }

    /// [`Self::load`] with the UNet's weights as `dtype` (f32, f16 or bf16).
    pub fn load_as(
        unet_dir: &Path,
        scheduler_dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, PretrainedError> {
        let ddim = DdimSchedule::load(scheduler_dir)?;
        let schedule = VpSchedule::from_ddim(&ddim)?;
        let unet = UNet2DModel::load_as(unet_dir, device, dtype)?;
        let classes = read_classes(unet_dir, unet.null_class().unwrap_or(0))?;
        Ok(Self::new(
            unet,
            schedule,
            unet_dir.display().to_string(),
            classes,
        ))
    }

    /// The same generator under another name (e.g. the hub id it was resolved from).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn unet(&self) -> &UNet2DModel {
        &self.unet
    }

    pub fn schedule(&self) -> &VpSchedule {
        &self.schedule
    }
}

/// `classes.json` of `dir` when present, else the labels `0..rows` by number.
fn read_classes(dir: &Path, rows: usize) -> Result<Vec<String>, PretrainedError> {
    let path: PathBuf = dir.join(CLASSES_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| PretrainedError::Json { path, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok((0..rows).map(|i| i.to_string()).collect())
        }
        Err(e) => Err(PretrainedError::io(path, e)),
    }
}

impl Generator for Unet2dGenerator {
    /// Uniform in the model's timestep, as DDIM spaces its steps (see `vp`).
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.schedule
            .timestep_grid(steps)
            .map_err(|e| semaug_core::Error::Backend(e.to_string()))
    }

    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            name: self.name.clone(),
            weights_sha256: self.unet.weights_sha256().map(str::to_string),
            image_size: self.unet.config().sample_size.map_or((32, 32), |s| s.hw()),
        }
    }

    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        Ok(images.clone())
    }

    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        Ok(latents.clone())
    }

    fn embed(&self, conditions: &[Condition]) -> semaug_core::Result<Tensor> {
        ClassRows::new(&self.name, &self.unet, &self.concepts, PROMPT_HINT).embed(conditions)
    }

    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor> {
        self.schedule.velocity(x, sigma, |x_t, timestep| {
            let t = Tensor::new(&[timestep as f32], x_t.device())?;
            let time = self
                .unet
                .time_embedding(&t, x_t.dim(0)?)
                .map_err(candle_core::Error::wrap)?;
            let embedding = embedding.to_dtype(time.dtype())?;
            self.unet
                .forward_with_embedding(x_t, &(time + embedding)?)
                .map_err(candle_core::Error::wrap)?
                .to_dtype(DType::F32)
        })
    }
}
