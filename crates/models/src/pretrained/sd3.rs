//! A Stable Diffusion 3 diffusers pipeline folder (`model_index.json`, `transformer/`,
//! `vae/`, `text_encoder{,_2,_3}/`, `tokenizer{,_2,_3}/`, `scheduler/`) behind the
//! [`Generator`] seam: [`Sd3Generator`], a [`LatentGenerator`] (VAE latents, prompts per
//! condition) over [`Sd3Networks`].
//!
//! * encode: the 16-channel VAE's posterior **mean**, `(mean - shift_factor) *
//!   scaling_factor` (no sampling); decode is the inverse.
//! * embed: one prompt per condition ([`LatentGenerator::prompt`]; no learned concepts),
//!   encoded as `StableDiffusion3Pipeline.encode_prompt` does. The two tensors SD3
//!   conditions on travel as one ([`pack_conditioning`]): the text tokens `[B, L, D]`
//!   followed by the pooled vector laid over `ceil(P / D)` zero-padded rows.
//! * velocity: the transformer at `timestep = sigma * 1000` (f32). SD3's flow is this
//!   project's time convention, so no adapter is needed; classifier-free guidance is the
//!   caller's ([`semaug_core::ConditionedField`], rows `[uncond; cond]`).
//! * grid: [`Sd3Generator::flow_grid`], the scheduler's shifted grid, on which Euler is
//!   diffusers' SD3 sampler.
//!
//! Weights may be f16 / bf16 ([`LatentGenerator::load_as`], meant for GPUs): images,
//! latents and velocities still cross the seam as f32 (the VAE scaling runs in f32; only
//! the networks' inputs and outputs are cast), the packed conditioning stays in the
//! weights' dtype.
//!
//! [`Generator`]: semaug_core::Generator

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use semaug_core::SigmaGrid;

use super::error::PretrainedError;
use super::latent_pipeline::{LatentGenerator, LatentNetworks, PipelineHash};
pub use super::latent_pipeline::{CLASS_PLACEHOLDER, DEFAULT_PROMPT_TEMPLATE};
use super::weights_file::{check_safetensors, component_weights};
use crate::sd::clip::CLIP_WEIGHTS_FILES;
use crate::sd::vae::VAE_WEIGHTS_FILES;
use crate::sd::{AutoencoderKl, SdError};
use crate::sd3::mmdit::TRANSFORMER_WEIGHTS_FILES;
use crate::sd3::{FlowMatchSchedule, Sd3PromptEmbeds, Sd3TextEncoders, Sd3Transformer2DModel};

/// The T5 encoder's folder; optional in a pipeline.
const T5_DIR: &str = "text_encoder_3";

/// A Stable Diffusion 3 pipeline as a generator.
pub type Sd3Generator = LatentGenerator<Sd3Networks>;

/// The networks of a Stable Diffusion 3 pipeline: the CLIP-L/G (+ T5) text encoders and
/// the MMDiT transformer with its flow-matching scheduler.
#[derive(Debug, Clone)]
pub struct Sd3Networks {
    text: Sd3TextEncoders,
    transformer: Sd3Transformer2DModel,
    schedule: FlowMatchSchedule,
}

impl Sd3Generator {
    pub fn transformer(&self) -> &Sd3Transformer2DModel {
        &self.networks.transformer
    }

    pub fn text_encoders(&self) -> &Sd3TextEncoders {
        &self.networks.text
    }

    /// The pipeline's `FlowMatchEulerDiscreteScheduler`.
    pub fn schedule(&self) -> &FlowMatchSchedule {
        &self.networks.schedule
    }

    /// The `steps`-interval grid of the pipeline's scheduler, from 1 to 0: Euler on it is
    /// `StableDiffusion3Pipeline`'s sampler.
    pub fn flow_grid(&self, steps: usize) -> Result<SigmaGrid, PretrainedError> {
        Ok(self.networks.schedule.grid(steps)?)
    }

    /// The SD3 conditioning of `prompts` (text tokens and pooled vectors).
    pub fn encode_prompts(&self, prompts: &[&str]) -> Result<Sd3PromptEmbeds, PretrainedError> {
        Ok(self.networks.text.encode(prompts)?)
    }

    /// [`pack_conditioning`] with this model's widths: the embedding
    /// [`semaug_core::Generator::velocity`] takes.
    pub fn pack(&self, embeds: &Sd3PromptEmbeds) -> Result<Tensor, PretrainedError> {
        Ok(pack_conditioning(&embeds.prompt_embeds, &embeds.pooled)?)
    }

    /// The text tokens and pooled vector of a packed embedding.
    pub fn unpack(&self, embedding: &Tensor) -> Result<Sd3PromptEmbeds, PretrainedError> {
        self.networks.unpack(embedding)
    }
}

impl Sd3Networks {
    /// [`unpack_conditioning`] with the transformer's pooled width.
    fn unpack(&self, embedding: &Tensor) -> Result<Sd3PromptEmbeds, PretrainedError> {
        let pooled = self.transformer.config().pooled_projection_dim;
        Ok(unpack_conditioning(embedding, pooled)?)
    }
}

impl LatentNetworks for Sd3Networks {
    const UNKNOWN_CONCEPT_HINT: &'static str =
        "learned concepts are not supported by the SD3 backend; use a prompt";

    /// The weights hash covers the transformer, VAE and text encoder files.
    fn load_pipeline(
        dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Sd3Generator, PretrainedError> {
        let transformer = Sd3Transformer2DModel::load_as(&dir.join("transformer"), device, dtype)?;
        let joint_dim = transformer.config().joint_attention_dim;
        let text = Sd3TextEncoders::load_as(dir, joint_dim, device, dtype)?;
        let pooled = transformer.config().pooled_projection_dim;
        if text.pooled_dim() != pooled {
            return Err(SdError::unsupported(
                dir.join("transformer").display().to_string(),
                "SD3 pipeline",
                "pooled_projection_dim",
                format!(
                    "= {pooled}, but the two CLIP projections give {}",
                    text.pooled_dim()
                ),
            )
            .into());
        }
        let vae = AutoencoderKl::load_as(&dir.join("vae"), device, dtype)?;
        let latent_channels = vae.config().latent_channels;
        if latent_channels != transformer.config().in_channels {
            return Err(SdError::unsupported(
                dir.join("vae").display().to_string(),
                "SD3 pipeline",
                "latent_channels",
                format!(
                    "= {latent_channels}, but the transformer takes {} channels",
                    transformer.config().in_channels
                ),
            )
            .into());
        }
        let networks = Self {
            text,
            transformer,
            schedule: FlowMatchSchedule::load(&dir.join("scheduler"))?,
        };
        let weights_sha256 = pipeline_sha256(dir)?;
        Ok(LatentGenerator::new(networks, vae, dir, weights_sha256))
    }

    /// The transformer's square sample size.
    fn latent_size(&self) -> (usize, usize) {
        let s = self.transformer.config().sample_size;
        (s, s)
    }

    fn knows_concept(&self, _token: &str) -> bool {
        false
    }

    /// The text tokens and pooled vectors of `prompts`, packed ([`pack_conditioning`]).
    fn embed_prompts(&self, prompts: &[&str]) -> Result<Tensor, PretrainedError> {
        let embeds = self.text.encode(prompts)?;
        Ok(pack_conditioning(&embeds.prompt_embeds, &embeds.pooled)?)
    }

    /// The scheduler's shifted grid ([`Sd3Generator::flow_grid`]).
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.schedule
            .grid(steps)
            .map_err(|e| semaug_core::Error::Backend(e.to_string()))
    }

    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor> {
        let embeds = self.unpack(embedding).map_err(candle_core::Error::wrap)?;
        let timestep = self.schedule.timestep(sigma);
        self.transformer
            .forward_at(x, timestep, &embeds.prompt_embeds, &embeds.pooled)
            .map_err(candle_core::Error::wrap)?
            .to_dtype(DType::F32)
    }
}

/// Packs SD3's two conditioning tensors into one: `prompt_embeds [B, L, D]` followed by
/// `pooled [B, P]` zero-padded to `k = ceil(P / D)` rows of width `D`, giving
/// `[B, L + k, D]`. Rows stay per-condition, so batches concatenate along axis 0.
pub fn pack_conditioning(prompt_embeds: &Tensor, pooled: &Tensor) -> Result<Tensor, SdError> {
    let (b, _, d) = prompt_embeds.dims3().map_err(|_| {
        SdError::input(
            "prompt_embeds",
            format!("expected [B, L, D], got {:?}", prompt_embeds.dims()),
        )
    })?;
    let p = match pooled.dims2() {
        Ok((pb, p)) if pb == b && p > 0 => p,
        _ => {
            return Err(SdError::input(
                "pooled",
                format!("expected [{b}, P], got {:?}", pooled.dims()),
            ))
        }
    };
    let k = p.div_ceil(d);
    let rows = pooled.pad_with_zeros(1, 0, k * d - p)?.reshape((b, k, d))?;
    Ok(Tensor::cat(&[prompt_embeds, &rows], 1)?)
}

/// The inverse of [`pack_conditioning`] for a pooled width `pooled_dim`.
pub fn unpack_conditioning(
    embedding: &Tensor,
    pooled_dim: usize,
) -> Result<Sd3PromptEmbeds, SdError> {
    let bad = || {
        SdError::input(
            "embedding",
            format!(
                "expected packed SD3 conditioning [B, L + k, D] with a pooled width of \
                 {pooled_dim}, got {:?}",
                embedding.dims()
            ),
        )
    };
    let (b, rows, d) = embedding.dims3().map_err(|_| bad())?;
    let k = pooled_dim.div_ceil(d.max(1));
    if pooled_dim == 0 || rows <= k {
        return Err(bad());
    }
    let prompt_embeds = embedding.narrow(1, 0, rows - k)?;
    let pooled = embedding
        .narrow(1, rows - k, k)?
        .reshape((b, k * d))?
        .narrow(1, 0, pooled_dim)?;
    Ok(Sd3PromptEmbeds {
        prompt_embeds,
        pooled,
    })
}

/// Checks that every weights file an SD3 pipeline folder needs exists and has a valid
/// safetensors header (T5 is optional; its shards are each checked).
pub fn check_pipeline_folder(dir: &Path) -> Result<(), PretrainedError> {
    component_weights(&dir.join("transformer"), &TRANSFORMER_WEIGHTS_FILES)?;
    component_weights(&dir.join("vae"), &VAE_WEIGHTS_FILES)?;
    component_weights(&dir.join("text_encoder"), &CLIP_WEIGHTS_FILES)?;
    component_weights(&dir.join("text_encoder_2"), &CLIP_WEIGHTS_FILES)?;
    for file in t5_files(dir)? {
        check_safetensors(&file)?;
    }
    Ok(())
}

/// The T5 weights files of the pipeline (none without `text_encoder_3/`).
fn t5_files(dir: &Path) -> Result<Vec<PathBuf>, PretrainedError> {
    let t5 = dir.join(T5_DIR);
    if !t5.is_dir() {
        return Ok(Vec::new());
    }
    let files = crate::sd3::t5::weight_files(&t5)?;
    if files.len() == 1 {
        // One file: the usual lookup, which names pickle-only folders.
        let names = crate::sd3::t5::T5_WEIGHTS_FILES;
        return Ok(vec![component_weights(&t5, &names)?.path]);
    }
    Ok(files)
}

/// sha256 over `component:sha256(file)` lines of every weights file the generator reads.
fn pipeline_sha256(dir: &Path) -> Result<String, PretrainedError> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let parts: [(&str, &[&str]); 4] = [
        ("transformer", &TRANSFORMER_WEIGHTS_FILES),
        ("vae", &VAE_WEIGHTS_FILES),
        ("text_encoder", &CLIP_WEIGHTS_FILES),
        ("text_encoder_2", &CLIP_WEIGHTS_FILES),
    ];
    for (component, names) in parts {
        let header = component_weights(&dir.join(component), names)?;
        files.push((component.to_string(), header.path));
    }
    for file in t5_files(dir)? {
        files.push((T5_DIR.to_string(), file));
    }
    let mut hash = PipelineHash::default();
    for (component, path) in files {
        hash.add(&component, &path)?;
    }
    Ok(hash.hex())
}
