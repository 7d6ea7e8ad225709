//! A text-prompted diffusers pipeline in a VAE's latent space behind the [`Generator`]
//! seam, whatever its family: [`LatentGenerator`] holds what Stable Diffusion 1.x/2.x
//! ([`super::sd`]) and SD3 ([`super::sd3`]) answer alike; a [`LatentNetworks`] family
//! brings its text encoders, its denoiser and the grid its sampler runs on.
//!
//! * encode: the VAE posterior **mean**, scaled as the VAE's config says (no sampling, so
//!   an augmentation is a function of its seed alone); decode is the inverse. Both cross
//!   the seam as f32 whatever the weights' dtype.
//! * embed: one prompt per condition ([`LatentGenerator::prompt`]): the prompt itself,
//!   `""` for the null condition (as the pipelines' negative prompt), or
//!   [`LatentGenerator::prompt_template`] filled with a class name or a learned concept
//!   token; the family encodes the prompts.
//! * weights hash: sha256 over `component:sha256(file)` lines (`PipelineHash`).
//!
//! Key decision: one generic generator rather than one per family, so the rules that turn
//! conditions into prompts and the VAE plumbing cannot drift apart between families.

use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use semaug_core::{Condition, Generator, GeneratorInfo, SigmaGrid};
use sha2::{Digest, Sha256};

use super::error::PretrainedError;
use crate::conditions::unknown_condition;
use crate::sd::AutoencoderKl;

/// The placeholder a prompt template's class name replaces.
pub const CLASS_PLACEHOLDER: &str = "{class}";
/// The default prompt for a class or concept (DA-Fusion's).
pub const DEFAULT_PROMPT_TEMPLATE: &str = "a photo of a {class}";

/// The networks of one pipeline family, between the prompts and the VAE's latents.
pub trait LatentNetworks: Sized {
    /// What to say of a concept token the family does not know.
    const UNKNOWN_CONCEPT_HINT: &'static str;

    /// Loads every component of the pipeline folder `dir` onto `device`, every network's
    /// weights as `dtype`.
    fn load_pipeline(
        dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<LatentGenerator<Self>, PretrainedError>;

    /// `(height, width)` of the denoiser's latents.
    fn latent_size(&self) -> (usize, usize);

    /// Whether `token` is a learned concept the prompts may name.
    fn knows_concept(&self, token: &str) -> bool;

    /// The embedding [`Self::velocity`] takes, one row per prompt.
    fn embed_prompts(&self, prompts: &[&str]) -> Result<Tensor, PretrainedError>;

    /// The grid of `steps` intervals from sigma 1 to 0 the family's sampler runs on.
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid>;

    /// The flow velocity (f32) of latents `x` at `sigma`.
    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor>;
}

/// A diffusers pipeline of family `N` as a generator.
#[derive(Debug, Clone)]
pub struct LatentGenerator<N> {
    pub(super) networks: N,
    vae: AutoencoderKl,
    name: String,
    weights_sha256: Option<String>,
    /// Class names in label order, for [`Condition::Class`].
    pub class_names: Vec<String>,
    /// The prompt of a class or concept; `{class}` is replaced by its name or token.
    pub prompt_template: String,
}

impl<N> LatentGenerator<N> {
    /// A pipeline loaded from `dir` (its name until [`Self::with_name`]), no class names
    /// and the default prompt template.
    pub(super) fn new(networks: N, vae: AutoencoderKl, dir: &Path, weights_sha256: String) -> Self {
        Self {
            networks,
            vae,
            name: dir.display().to_string(),
            weights_sha256: Some(weights_sha256),
            class_names: Vec::new(),
            prompt_template: DEFAULT_PROMPT_TEMPLATE.to_string(),
        }
    }
}

impl<N: LatentNetworks> LatentGenerator<N> {
    /// Loads every component of the pipeline folder `dir` onto `device` (weights as f32).
    /// The weights hash covers every weights file the generator reads.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, PretrainedError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with every network's weights as `dtype` (f32, f16 or bf16).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, PretrainedError> {
        N::load_pipeline(dir, device, dtype)
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

    pub fn vae(&self) -> &AutoencoderKl {
        &self.vae
    }

    /// The prompt a condition stands for.
    pub fn prompt(&self, condition: &Condition) -> semaug_core::Result<String> {
        let fill = |name: &str| self.prompt_template.replace(CLASS_PLACEHOLDER, name);
        let unknown = |hint: &str| unknown_condition(&self.name, condition, hint);
        match condition {
            Condition::Null => Ok(String::new()),
            Condition::Prompt(text) => Ok(text.clone()),
            Condition::Class(c) => match self.class_names.get(*c) {
                Some(name) => Ok(fill(name)),
                None => Err(unknown(&format!(
                    "{} class names were given; pass the dataset's class names",
                    self.class_names.len()
                ))),
            },
            Condition::Concept(token) if self.networks.knows_concept(token) => Ok(fill(token)),
            Condition::Concept(_) => Err(unknown(N::UNKNOWN_CONCEPT_HINT)),
        }
    }

    /// `(height, width)` in pixels: the latent size times the VAE's factor.
    fn image_size(&self) -> (usize, usize) {
        let (h, w) = self.networks.latent_size();
        let f = self.vae.config().downscale_factor();
        (h * f, w * f)
    }
}

impl<N: LatentNetworks> Generator for LatentGenerator<N> {
    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.networks.sigma_grid(steps)
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
        self.networks
            .embed_prompts(&prompts)
            .map_err(|e| semaug_core::Error::Tensor(candle_core::Error::wrap(e)))
    }

    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor> {
        self.networks.velocity(x, sigma, embedding)
    }
}

/// sha256 over `component:sha256(file)` lines, one per weights file, in the order added:
/// the weights hash a pipeline reports.
#[derive(Default)]
pub(super) struct PipelineHash(Sha256);

impl PipelineHash {
    /// Adds the line of one weights file (read streamed).
    pub fn add(&mut self, component: &str, path: &Path) -> Result<(), PretrainedError> {
        self.0
            .update(format!("{component}:{}\n", file_sha256(path)?));
        Ok(())
    }

    pub fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
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
