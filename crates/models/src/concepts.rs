//! Novel concepts (paper section 3.2): a new token per class, learned from a few images
//! by textual inversion with the generator frozen.
//!
//! The seam is [`ConceptBackend`]: a backend says what a concept's learnable tensor is
//! and how its flow-matching loss depends on it. For the embedded model a concept is one
//! new row of the class-embedding table (`[T]`); a text-conditioned backend makes it new
//! rows of the text encoder's input embeddings. The loop ([`learn`]) is shared: seeded
//! batches with flips, logit-normal sigma, AdamW on the concept alone. The model's
//! weights are plain tensors, not variables, so only the concept can change.
//!
//! Concept files use diffusers' textual-inversion layout, `{token: embedding}` in
//! safetensors, with the model's sha256 in the metadata so a concept is never applied to
//! a model it was not learned for.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

use semaug_core::seeds::{label, Stream};
use semaug_core::time::{noised_per_sample, velocity_target};
use semaug_train::optim::{AdamW, AdamWConfig};
use semaug_train::{clip_grad_norm, Params};

use crate::embedded::{EmbeddedGenerator, TIMESTEPS_PER_SIGMA};
use crate::flow_training::TrainImages;

/// Metadata key holding the sha256 of the model a concept file belongs to.
pub const MODEL_SHA256_KEY: &str = "semaug.model_sha256";

/// Where a concept's optimisation starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConceptInit {
    /// The null (unconditional) embedding.
    Null,
    /// An existing class's embedding (a text model: its class name's words).
    Class(usize),
    /// The embedding of a word (text models, diffusers' `initializer_token`).
    Word(String),
}

#[derive(Debug, Clone)]
pub struct ConceptConfig {
    pub steps: u64,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub init: ConceptInit,
    pub seed: u64,
}

impl Default for ConceptConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            learning_rate: 5e-3,
            batch_size: 16,
            init: ConceptInit::Null,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConceptError {
    #[error("invalid concept settings: {0}")]
    Config(String),
    #[error("{path}: {detail}")]
    File {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Engine(#[from] semaug_core::Error),
}

/// What a backend must provide to learn a concept.
pub trait ConceptBackend {
    /// The starting value of the learnable tensor.
    fn concept_init(&self, init: &ConceptInit) -> Result<Tensor, ConceptError>;

    /// Pixels `[B, 3, H, W]` in [-1, 1] -> the space the velocity lives in (identity for
    /// pixel-space models, the VAE latent for latent models). Called once per image.
    fn concept_encode(&self, pixels: &Tensor) -> Result<Tensor, ConceptError> {
        Ok(pixels.clone())
    }

    /// Predicted velocities for `x [B, ...]` at per-sample `sigmas [B]`, conditioned on
    /// the concept tensor (a variable: gradients must reach it).
    fn concept_velocity(
        &self,
        concept: &Tensor,
        x: &Tensor,
        sigmas: &Tensor,
    ) -> Result<Tensor, ConceptError>;
}

impl ConceptBackend for EmbeddedGenerator {
    fn concept_init(&self, init: &ConceptInit) -> Result<Tensor, ConceptError> {
        let table = self
            .unet()
            .class_embedding_table()
            .ok_or_else(|| ConceptError::Config("the model has no class embedding".into()))?;
        let null = self.unet().null_class().unwrap_or(0);
        let row = match init {
            ConceptInit::Null => null,
            ConceptInit::Class(c) if *c < null => *c,
            ConceptInit::Class(c) => {
                return Err(ConceptError::Config(format!(
                    "init class {c}: the model has {null} classes"
                )))
            }
            ConceptInit::Word(word) => {
                return Err(ConceptError::Config(format!(
                    "init word `{word}`: the embedded model is class-conditional; start \
                     from `null` or one of its classes"
                )))
            }
        };
        Ok(table.get(row)?.detach())
    }

    fn concept_velocity(
        &self,
        concept: &Tensor,
        x: &Tensor,
        sigmas: &Tensor,
    ) -> Result<Tensor, ConceptError> {
        let b = x.dim(0)?;
        let t = (sigmas * TIMESTEPS_PER_SIGMA)?;
        let time = self
            .unet()
            .time_embedding(&t, b)
            .map_err(candle_core::Error::wrap)?;
        let conditioning = time.broadcast_add(&concept.unsqueeze(0)?)?;
        Ok(self
            .unet()
            .forward_with_embedding(x, &conditioning)
            .map_err(candle_core::Error::wrap)?)
    }
}

/// Learn one concept from `images` (all of one class); `progress(step, loss)` after
/// each step. Returns the learned tensor.
pub fn learn<B: ConceptBackend + ?Sized>(
    backend: &B,
    images: &TrainImages,
    config: &ConceptConfig,
    progress: &mut dyn FnMut(u64, f64),
) -> Result<Tensor, ConceptError> {
    if images.is_empty() || config.batch_size == 0 || config.steps == 0 {
        return Err(ConceptError::Config(
            "need images, batch_size >= 1 and steps >= 1".into(),
        ));
    }
    let concept = Var::from_tensor(&backend.concept_init(&config.init)?)?;
    let varmap = VarMap::new();
    varmap
        .data()
        .lock()
        .map_err(|_| ConceptError::Config("poisoned".into()))?
        .insert("concept".into(), concept.clone());
    let params = Params::from_varmap(&varmap);
    let mut optimizer = AdamW::new(&params, AdamWConfig::default());
    let encoded = encode_with_flips(backend, images)?;
    for step in 0..config.steps {
        let (x0, sigmas, eps) = batch(&encoded, config, step)?;
        let x = noised_per_sample(&x0, &eps, &sigmas)?;
        let v = backend.concept_velocity(concept.as_tensor(), &x, &sigmas)?;
        let loss = (v - velocity_target(&x0, &eps)?)?.sqr()?.mean_all()?;
        let mut grads = params.gradients(&loss.backward()?)?;
        clip_grad_norm(&mut grads, 1.0);
        optimizer.step(&params, &grads, config.learning_rate)?;
        progress(step + 1, loss.to_scalar::<f32>()? as f64);
    }
    Ok(concept.as_tensor().detach())
}

/// Every image and its mirror image in the backend's space, `[2N, ...]`: row `2i` is
/// image `i`, row `2i + 1` its horizontal flip.
fn encode_with_flips<B: ConceptBackend + ?Sized>(
    backend: &B,
    images: &TrainImages,
) -> Result<Tensor, ConceptError> {
    let (n, h, w) = (images.len(), images.height, images.width);
    let pixels: Vec<f32> = images
        .pixels
        .iter()
        .map(|&v| 2.0 * (v as f32 / 255.0) - 1.0)
        .collect();
    let x = Tensor::from_vec(pixels, (n, 3, h, w), &Device::Cpu)?;
    let both = Tensor::stack(&[&x, &x.flip(&[3])?], 1)?.reshape((2 * n, 3, h, w))?;
    let rows = (0..2 * n)
        .map(|i| backend.concept_encode(&both.narrow(0, i, 1)?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::cat(&rows, 0)?.detach())
}

/// Step `step`'s images (drawn with replacement, flipped at random), sigmas and noise.
fn batch(
    encoded: &Tensor,
    config: &ConceptConfig,
    step: u64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let mut rng = Stream::new(config.seed, step, label("concept/batch"), 0);
    let n = encoded.dim(0)? / 2;
    let mut rows = Vec::with_capacity(config.batch_size);
    let mut sigmas = Vec::with_capacity(config.batch_size);
    for _ in 0..config.batch_size {
        let i = rng.below(n);
        let flip = rng.bernoulli(0.5);
        rows.push((2 * i + usize::from(flip)) as u32);
        sigmas.push(1.0 / (1.0 + (-rng.normal()).exp()));
    }
    let b = config.batch_size;
    let x0 = encoded.index_select(&Tensor::new(rows, encoded.device())?, 0)?;
    let eps = Stream::new(config.seed, step, label("concept/noise"), 0)
        .normal_tensor(x0.dims(), &Device::Cpu)?;
    Ok((x0, Tensor::from_vec(sigmas, b, &Device::Cpu)?, eps))
}

/// Write `{token: embedding}` with the model's sha256 in the metadata.
pub fn save(
    path: &Path,
    concepts: &BTreeMap<String, Tensor>,
    model_sha256: &str,
) -> Result<(), ConceptError> {
    let bad = |detail: String| ConceptError::File {
        path: path.to_owned(),
        detail,
    };
    let metadata = HashMap::from([(MODEL_SHA256_KEY.to_string(), model_sha256.to_string())]);
    let tensors: Vec<(String, Tensor)> = concepts
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::F32)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    let bytes =
        safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(metadata))
            .map_err(|e| bad(e.to_string()))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| bad(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| bad(e.to_string()))
}

/// Read a concept file: the tokens and the sha256 of the model it was learned for
/// (`None` for files from other tools, e.g. diffusers' `learned_embeds.safetensors`).
pub fn load(path: &Path) -> Result<(BTreeMap<String, Tensor>, Option<String>), ConceptError> {
    let bad = |detail: String| ConceptError::File {
        path: path.to_owned(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let model = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(MODEL_SHA256_KEY).cloned());
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| bad(e.to_string()))?;
    let concepts = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?.flatten_all()?)))
        .collect::<candle_core::Result<BTreeMap<_, _>>>()?;
    Ok((concepts, model))
}
