//! A Stable Diffusion 1.x/2.x diffusers pipeline folder (`model_index.json`, `unet/`,
//! `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`) behind the [`Generator`] seam.
//!
//! * encode: the VAE posterior **mean** times `scaling_factor` (no sampling, so an
//!   augmentation is a function of its seed alone); decode is the inverse.
//! * embed: the CLIP text encoder's `last_hidden_state` `[B, 77, D]` of one prompt per
//!   condition: the prompt itself, `""` for the null condition (as the SD pipelines'
//!   negative prompt), [`SdGenerator::prompt_template`] filled with a class name, or the
//!   template filled with a learned concept token, whose input-embedding row is spliced
//!   into the encoder (textual inversion; concept tokens may appear in prompts too).
//! * velocity: the text-conditioned UNet through the [`VpSchedule`] adapter; with the
//!   DDIM grid of [`SdGenerator::ddim_grid`] Euler retraces diffusers' DDIM sampler.
//!
//! Weights may be f16 / bf16 ([`SdGenerator::load_as`], meant for GPUs): images, latents
//! and velocities still cross the seam as f32 (the VAE scaling and the VP adapter run in
//! f32; only the networks' inputs and outputs are cast), embeddings stay in the weights'
//! dtype.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use semaug_core::{Condition, Generator, GeneratorInfo, SigmaGrid};
use sha2::{Digest, Sha256};

use super::error::PretrainedError;
use super::vp::VpSchedule;
use crate::sd::clip::CLIP_WEIGHTS_FILES;
use crate::sd::unet_cond::UNET_WEIGHTS_FILES;
use crate::sd::vae::VAE_WEIGHTS_FILES;
use crate::sd::{
    AutoencoderKl, ClipTextModel, ClipTokenizer, ConceptEmbedding, DdimSchedule,
    UNet2DConditionModel,
};

/// The placeholder a prompt template's class name replaces.
pub const CLASS_PLACEHOLDER: &str = "{class}";
/// The default prompt for a class or concept (DA-Fusion's).
pub const DEFAULT_PROMPT_TEMPLATE: &str = "a photo of a {class}";
/// SD 1.x's UNet sample size (64 latents = 512 pixels) when the config leaves it out.
const DEFAULT_SAMPLE_SIZE: usize = 64;

/// A learned concept: its token id in the tokenizer and its embedding row `[D]`.
#[derive(Debug, Clone)]
struct Concept {
    id: u32,
    row: Tensor,
}

/// A Stable Diffusion pipeline as a generator.
#[derive(Debug, Clone)]
pub struct SdGenerator {
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextModel,
    unet: UNet2DConditionModel,
    vae: AutoencoderKl,
    ddim: DdimSchedule,
    schedule: VpSchedule,
    concepts: BTreeMap<String, Concept>,
    name: String,
    weights_sha256: Option<String>,
    /// Class names in label order, for [`Condition::Class`].
    pub class_names: Vec<String>,
    /// The prompt of a class or concept; `{class}` is replaced by its name or token.
    pub prompt_template: String,
}

impl SdGenerator {
    /// Loads every component of the pipeline folder `dir` onto `device` (weights as f32).
    /// The weights hash covers the UNet, VAE and text encoder files.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, PretrainedError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with every network's weights as `dtype` (f32, f16 or bf16).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, PretrainedError> {
        let ddim = DdimSchedule::load(&dir.join("scheduler"))?;
        let schedule = VpSchedule::from_ddim(&ddim)?;
        Ok(Self {
            tokenizer: ClipTokenizer::load(&dir.join("tokenizer"))?,
            text_encoder: ClipTextModel::load_as(&dir.join("text_encoder"), device, dtype)?,
            unet: UNet2DConditionModel::load_as(&dir.join("unet"), device, dtype)?,
            vae: AutoencoderKl::load_as(&dir.join("vae"), device, dtype)?,
            ddim,
            schedule,
            concepts: BTreeMap::new(),
            name: dir.display().to_string(),
            weights_sha256: Some(pipeline_sha256(dir)?),
            class_names: Vec::new(),
            prompt_template: DEFAULT_PROMPT_TEMPLATE.to_string(),
        })
    }

    /// The same generator under another name (e.g. the hub id it was resolved from).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The same generator with class names for [`Condition::Class`].
    pub fn with_class_names(mut self, class_names: Vec<String>) -> Self {
        self.class_names = class_names;
        self
    }

    pub fn unet(&self) -> &UNet2DConditionModel {
        &self.unet
    }

    pub fn vae(&self) -> &AutoencoderKl {
        &self.vae
    }

    pub fn text_encoder(&self) -> &ClipTextModel {
        &self.text_encoder
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The pipeline's DDIM scheduler.
    pub fn ddim(&self) -> &DdimSchedule {
        &self.ddim
    }

    pub fn schedule(&self) -> &VpSchedule {
        &self.schedule
    }

    /// The flow grid on which Euler is the pipeline's `n`-step DDIM sampler.
    pub fn ddim_grid(&self, n: usize) -> Result<SigmaGrid, PretrainedError> {
        self.schedule.ddim_grid(&self.ddim, n)
    }

    /// Adds a textual-inversion token (e.g. `<cat>`) with its embedding row `[D]`; returns
    /// its token id. The token must be new to the tokenizer.
    pub fn add_concept(&mut self, token: &str, row: Tensor) -> Result<u32, PretrainedError> {
        let width = self.text_encoder.config().hidden_size;
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
        let id = self.tokenizer.add_concept_token(token)?;
        self.concepts.insert(token.to_string(), Concept { id, row });
        Ok(id)
    }

    /// The concept tokens added so far.
    pub fn concept_tokens(&self) -> impl Iterator<Item = &str> {
        self.concepts.keys().map(String::as_str)
    }

    /// The prompt a condition stands for.
    pub fn prompt(&self, condition: &Condition) -> semaug_core::Result<String> {
        let fill = |name: &str| self.prompt_template.replace(CLASS_PLACEHOLDER, name);
        match condition {
            Condition::Null => Ok(String::new()),
            Condition::Prompt(text) => Ok(text.clone()),
            Condition::Class(c) => match self.class_names.get(*c) {
                Some(name) => Ok(fill(name)),
                None => Err(self.unknown(
                    condition,
                    &format!(
                        "{} class names were given; pass the dataset's class names",
                        self.class_names.len()
                    ),
                )),
            },
            Condition::Concept(token) if self.concepts.contains_key(token) => Ok(fill(token)),
            Condition::Concept(_) => Err(self.unknown(condition, "load it with --concepts")),
        }
    }

    /// `last_hidden_state [B, 77, D]` of `prompts`, with every concept row spliced in.
    pub fn encode_prompts(&self, prompts: &[&str]) -> Result<Tensor, PretrainedError> {
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

    fn unknown(&self, condition: &Condition, hint: &str) -> semaug_core::Error {
        semaug_core::Error::UnknownCondition {
            condition: condition.to_string(),
            generator: self.name.clone(),
            hint: hint.to_string(),
        }
    }

    /// `(height, width)` in pixels: the UNet's sample size times the VAE's factor.
    fn image_size(&self) -> (usize, usize) {
        let (h, w) = match self.unet.config().other.get("sample_size") {
            Some(serde_json::Value::Array(hw)) if hw.len() == 2 => (
                hw[0].as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize,
                hw[1].as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize,
            ),
            Some(v) => {
                let s = v.as_u64().unwrap_or(DEFAULT_SAMPLE_SIZE as u64) as usize;
                (s, s)
            }
            None => (DEFAULT_SAMPLE_SIZE, DEFAULT_SAMPLE_SIZE),
        };
        let f = self.vae.config().downscale_factor();
        (h * f, w * f)
    }
}

impl Generator for SdGenerator {
    /// Uniform in the model's timestep, as DDIM spaces its steps (see `vp`).
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.schedule
            .timestep_grid(steps)
            .map_err(|e| semaug_core::Error::Backend(e.to_string()))
    }

    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            name: self.name.clone(),
            weights_sha256: self.weights_sha256.clone(),
            image_size: self.image_size(),
        }
    }

    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        self.vae
            .encode_scaled(images)
            .map_err(candle_core::Error::wrap)
    }

    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        self.vae
            .decode_scaled(latents)
            .map_err(candle_core::Error::wrap)
    }

    fn embed(&self, conditions: &[Condition]) -> semaug_core::Result<Tensor> {
        let prompts = conditions
            .iter()
            .map(|c| self.prompt(c))
            .collect::<semaug_core::Result<Vec<_>>>()?;
        let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
        self.encode_prompts(&prompts)
            .map_err(|e| semaug_core::Error::Tensor(candle_core::Error::wrap(e)))
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
    let mut combined = Sha256::new();
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
        combined.update(format!("{component}:{}\n", file_sha256(&path)?));
    }
    Ok(hex::encode(combined.finalize()))
}

/// sha256 (hex) of a file, streamed.
fn file_sha256(path: &Path) -> Result<String, PretrainedError> {
    let mut file = std::fs::File::open(path).map_err(|e| PretrainedError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| PretrainedError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
