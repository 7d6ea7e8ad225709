//! A Stable Diffusion 1.x/2.x diffusers pipeline folder (`model_index.json`, `unet/`,
//! `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`) behind the [`Generator`] seam:
//! [`SdGenerator`], a [`LatentGenerator`] (VAE latents, prompts per condition) over
//! [`SdNetworks`].
//!
//! * encode: the VAE posterior **mean** times `scaling_factor`; decode is the inverse.
//! * embed: the CLIP text encoder's `last_hidden_state` `[B, 77, D]` of one prompt per
//!   condition ([`LatentGenerator::prompt`]); a learned concept token's input-embedding
//!   row is spliced into the encoder (textual inversion; concept tokens may appear in
//!   prompts too).
//! * velocity: the text-conditioned UNet through the [`VpSchedule`] adapter; with the
//!   DDIM grid of [`SdGenerator::ddim_grid`] Euler retraces diffusers' DDIM sampler.
//!
//! Weights may be f16 / bf16 ([`LatentGenerator::load_as`], meant for GPUs): images,
//! latents and velocities still cross the seam as f32 (the VAE scaling and the VP adapter
//! run in f32; only the networks' inputs and outputs are cast), embeddings stay in the
//! weights' dtype.
//!
//! [`Generator`]: semaug_core::Generator

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use semaug_core::SigmaGrid;

use super::error::PretrainedError;
use super::latent_pipeline::{LatentGenerator, LatentNetworks, PipelineHash};
pub use super::latent_pipeline::{CLASS_PLACEHOLDER, DEFAULT_PROMPT_TEMPLATE};
use super::vp::VpSchedule;
use crate::sd::clip::CLIP_WEIGHTS_FILES;
use crate::sd::unet_cond::UNET_WEIGHTS_FILES;
use crate::sd::vae::VAE_WEIGHTS_FILES;
use crate::sd::{
    AutoencoderKl, ClipTextModel, ClipTokenizer, ConceptEmbedding, DdimSchedule,
    UNet2DConditionModel,
};

/// SD 1.x's UNet sample size (64 latents = 512 pixels) when the config leaves it out.
const DEFAULT_SAMPLE_SIZE: usize = 64;

/// A Stable Diffusion 1.x/2.x pipeline as a generator.
pub type SdGenerator = LatentGenerator<SdNetworks>;

/// A learned concept: its token id in the tokenizer and its embedding row `[D]`.
#[derive(Debug, Clone)]
struct Concept {
    id: u32,
    row: Tensor,
}

/// The networks of a Stable Diffusion 1.x/2.x pipeline: CLIP with its learned concepts,
/// and the text-conditioned UNet with its DDIM schedule.
#[derive(Debug, Clone)]
pub struct SdNetworks {
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextModel,
    unet: UNet2DConditionModel,
    ddim: DdimSchedule,
    schedule: VpSchedule,
    concepts: BTreeMap<String, Concept>,
}

impl SdGenerator {
    pub fn unet(&self) -> &UNet2DConditionModel {
        &self.networks.unet
    }

    pub fn text_encoder(&self) -> &ClipTextModel {
        &self.networks.text_encoder
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.networks.tokenizer
    }

    /// The pipeline's DDIM scheduler.
    pub fn ddim(&self) -> &DdimSchedule {
        &self.networks.ddim
    }

    pub fn schedule(&self) -> &VpSchedule {
        &self.networks.schedule
    }

    /// The flow grid on which Euler is the pipeline's `n`-step DDIM sampler.
    pub fn ddim_grid(&self, n: usize) -> Result<SigmaGrid, PretrainedError> {
        self.networks.schedule.ddim_grid(&self.networks.ddim, n)
    }

    /// Adds a textual-inversion token (e.g. `<cat>`) with its embedding row `[D]`; returns
    /// its token id. The token must be new to the tokenizer.
    pub fn add_concept(&mut self, token: &str, row: Tensor) -> Result<u32, PretrainedError> {
        let networks = &mut self.networks;
        let width = networks.text_encoder.config().hidden_size;
        if row.dims() != [width] {
            return Err(crate::sd::SdError::Input {
                input: "concept row",
                detail: format!(
                    "`{token}` has shape {:?}, the text encoder needs [{width}]",
                    row.dims()
                ),
            }
            .into());
        }
        let id = networks.tokenizer.add_concept_token(token)?;
        networks
            .concepts
            .insert(token.to_string(), Concept { id, row });
        Ok(id)
    }

    /// The concept tokens added so far.
    pub fn concept_tokens(&self) -> impl Iterator<Item = &str> {
        self.networks.concepts.keys().map(String::as_str)
    }

    /// `last_hidden_state [B, 77, D]` of `prompts`, with every concept row spliced in.
    pub fn encode_prompts(&self, prompts: &[&str]) -> Result<Tensor, PretrainedError> {
        self.networks.embed_prompts(prompts)
    }
}

impl LatentNetworks for SdNetworks {
    const UNKNOWN_CONCEPT_HINT: &'static str = "load it with --concepts";

    /// The weights hash covers the UNet, VAE and text encoder files.
    fn load_pipeline(
        dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<SdGenerator, PretrainedError> {
        let ddim = DdimSchedule::load(&dir.join("scheduler"))?;
        let schedule = VpSchedule::from_ddim(&ddim)?;
        let networks = Self {
            tokenizer: ClipTokenizer::load(&dir.join("tokenizer"))?,
            text_encoder: ClipTextModel::load_as(&dir.join("text_encoder"), device, dtype)?,
            unet: UNet2DConditionModel::load_as(&dir.join("unet"), device, dtype)?,
            ddim,
            schedule,
            concepts: BTreeMap::new(),
        };
        let vae = AutoencoderKl::load_as(&dir.join("vae"), device, dtype)?;
        let weights_sha256 = pipeline_sha256(dir)?;
        Ok(LatentGenerator::new(networks, vae, dir, weights_sha256))
    }

    /// The UNet's `sample_size`: one side or `[height, width]`.
    fn latent_size(&self) -> (usize, usize) {
        match self.unet.config().other.get("sample_size") {
            Some(serde_json::Value::Array(hw)) if hw.len() == 2 => (
                hw[0].as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize,
                hw[1].as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize,
            ),
            Some(v) => {
                let s = v.as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize;
                (s, s)
            }
            None => (DEFAULT_SAMPLE_SIZE, DEFAULT_SAMPLE_SIZE),
        }
    }

    fn knows_concept(&self, token: &str) -> bool {
        self.concepts.contains_key(token)
    }

    /// `last_hidden_state [B, 77, D]` of `prompts`, with every concept row spliced in.
    fn embed_prompts(&self, prompts: &[&str]) -> Result<Tensor, PretrainedError> {
        let device = self.text_encoder.token_embedding_table().device();
        let ids = self.tokenizer.encode_batch(prompts, device)?;
        let concepts: Vec<ConceptEmbedding> = self
            .concepts
            .values()
            .map(|c| ConceptEmbedding {
                id: c.id,
                row: &c.row,
            })
            .collect();
        let inputs = self.text_encoder.embed_tokens(&ids, &concepts)?;
        Ok(self
            .text_encoder
            .forward_embeddings(&inputs)?
            .last_hidden_state)
    }

    /// Uniform in the model's timestep, as DDIM spaces its steps (see `vp`).
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.schedule
            .timestep_grid(steps)
            .map_err(|e| semaug_core::Error::Backend(e.to_string()))
    }

    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor> {
        self.schedule.velocity(x, sigma, |x_t, timestep| {
            self.unet
                .forward_at(x_t, timestep, embedding)
                .map_err(candle_core::Error::wrap)?
                .to_dtype(DType::F32)
        })
    }
}

/// sha256 over `component:sha256(weights)` lines of the UNet, VAE and text encoder.
fn pipeline_sha256(dir: &Path) -> Result<String, PretrainedError> {
    let mut hash = PipelineHash::default();
    let parts: [(&str, &[&str]); 3] = [
        ("unet", &UNET_WEIGHTS_FILES),
        ("vae", &VAE_WEIGHTS_FILES),
        ("text_encoder", &CLIP_WEIGHTS_FILES),
    ];
    for (component, names) in parts {
        let folder = dir.join(component);
        let path = names
            .iter()
            .map(|n| folder.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| PretrainedError::MissingWeights {
                dir: folder.clone(),
                expected: names.join(", "),
            })?;
        hash.add(component, &path)?;
    }
    Ok(hash.hex())
}
