//! The seam every generative backend implements, and its view as a velocity field.
//!
//! A backend maps pixels to its working space ([`Generator::encode`]; the identity for
//! pixel-space models, a VAE for latent ones), turns conditions into an embedding tensor
//! whose first axis is the batch ([`Generator::embed`]: class-embedding rows, text
//! encoder states, ...), and gives the velocity `v(x, sigma | embedding)` in this crate's
//! time convention. Operators only ever see this trait, so every augmentation works
//! with every backend. Because conditions become plain tensors before the model sees
//! them, a learned concept is just another embedding: the seam textual inversion uses.

use candle_core::Tensor;

use crate::error::Result;
use crate::field::VelocityField;
use crate::grid::SigmaGrid;

/// What a generated sample is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The unconditional ("null") condition used by classifier-free guidance.
    Null,
    /// A class the backend was trained on, by index.
    Class(usize),
    /// A learned concept token, by name (e.g. `<cat>`).
    Concept(String),
    /// A text prompt (text-conditioned backends).
    Prompt(String),
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Class(c) => write!(f, "class {c}"),
            Self::Concept(name) => write!(f, "concept {name}"),
            Self::Prompt(text) => write!(f, "prompt {text:?}"),
        }
    }
}

/// Identity and shapes of a backend, recorded in every output's provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorInfo {
    /// Human-readable name, e.g. `embedded-small` or a checkpoint path.
    pub name: String,
    /// sha256 (hex) of the weights, when known.
    pub weights_sha256: Option<String>,
    /// `(height, width)` of the images the backend works at.
    pub image_size: (usize, usize),
}

/// A generative backend: encode/decode, conditions, velocity.
pub trait Generator {
    fn info(&self) -> GeneratorInfo;

    /// Pixels `[B, 3, H, W]` in [-1, 1] at [`GeneratorInfo::image_size`] -> working space.
    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor>;

    /// Working space -> pixels `[B, 3, H, W]` in about [-1, 1].
    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor>;

    /// One embedding row per condition, `[B, ...]`.
    fn embed(&self, conditions: &[Condition]) -> Result<Tensor>;

    /// `v(x, sigma | embedding)` for a batch `x [B, ...]` and embedding `[B, ...]`.
    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor>;

    /// The grid of `steps` intervals from sigma 1 to 0 this model integrates best on.
    /// Uniform by default; a VP model spends its steps uniformly in its own timestep, a
    /// shifted flow model (SD3) on its shifted grid. Operators truncate and reverse it.
    fn sigma_grid(&self, steps: usize) -> Result<SigmaGrid> {
        SigmaGrid::uniform(steps)
    }
}

/// A generator with fixed per-row conditions and a guidance scale, as the velocity
/// field the solvers integrate. With guidance `g != 1` the unconditional and
/// conditional rows run as one batch `[uncond; cond]`, and
/// `v = v_u + g (v_c - v_u)`.
pub struct ConditionedField<'a, G: Generator + ?Sized> {
    generator: &'a G,
    conditional: Tensor,
    unconditional: Option<Tensor>,
    guidance: f64,
}

impl<'a, G: Generator + ?Sized> ConditionedField<'a, G> {
    /// Guidance 1 evaluates only the conditional rows; otherwise the null condition is
    /// embedded once for the batch.
    pub fn new(generator: &'a G, conditions: &[Condition], guidance: f64) -> Result<Self> {
        let conditional = generator.embed(conditions)?;
        let unconditional = if guidance == 1.0 {
            None
        } else {
            Some(generator.embed(&vec![Condition::Null; conditions.len()])?)
        };
        Ok(Self {
            generator,
            conditional,
            unconditional,
            guidance,
        })
    }

    /// A field over an embedding the caller built (e.g. a concept being learned).
    pub fn from_embedding(generator: &'a G, conditional: Tensor) -> Self {
        Self {
            generator,
            conditional,
            unconditional: None,
            guidance: 1.0,
        }
    }
}

impl<G: Generator + ?Sized> VelocityField for ConditionedField<'_, G> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
        let Some(unconditional) = &self.unconditional else {
            return self.generator.velocity(x, sigma, &self.conditional);
        };
        let b = x.dim(0)?;
        let both = Tensor::cat(&[x, x], 0)?;
        let embedding = Tensor::cat(&[unconditional, &self.conditional], 0)?;
        let v = self.generator.velocity(&both, sigma, &embedding)?;
        let (v_u, v_c) = (v.narrow(0, 0, b)?, v.narrow(0, b, b)?);
        &v_u + ((&v_c - &v_u)? * self.guidance)?
    }
}
