//! The embedded backend: a class-conditional pixel-space UNet behind the
//! [`Generator`] seam.
//!
//! Pixel space, so encode and decode are the identity. A condition becomes a row of the
//! class-embedding table (the null class is the last row; [`crate::conditions`]); a
//! learned concept is one more row supplied by the caller; the velocity is the UNet's
//! output at timestep `sigma * 1000`, the scale it was trained with (`flow_training`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use semaug_core::{Condition, Generator, GeneratorInfo};

use crate::conditions::ClassRows;
use crate::unet::{UNet2DModel, UnetError};

/// The class names file written next to a trained model.
pub const CLASSES_FILE: &str = "classes.json";

/// Timesteps the network sees per unit of sigma.
pub const TIMESTEPS_PER_SIGMA: f64 = 1000.0;

/// What the embedded generator says of a text prompt.
const PROMPT_HINT: &str = "the embedded model is class-conditional, not text-conditional";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Unet(#[from] UnetError),
    #[error("{path}: {detail}")]
    Classes { path: PathBuf, detail: String },
    #[error("{dir}: this UNet has no class embedding; the embedded generator needs a class-conditional model")]
    Unconditional { dir: PathBuf },
}

/// A class-conditional [`UNet2DModel`] with its class names and learned concepts.
#[derive(Debug, Clone)]
pub struct EmbeddedGenerator {
    unet: UNet2DModel,
    name: String,
    /// Class names in label order (may be fewer than the table's rows minus the null).
    pub classes: Vec<String>,
    /// Learned concept rows `[T]` by token name (e.g. `<cat>`).
    pub concepts: BTreeMap<String, Tensor>,
}

impl EmbeddedGenerator {
    pub fn new(
        unet: UNet2DModel,
        name: String,
        classes: Vec<String>,
    ) -> Result<Self, EmbeddedError> {
        if unet.class_embedding_table().is_none() {
            return Err(EmbeddedError::Unconditional {
                dir: PathBuf::from(&name),
            });
        }
        Ok(Self {
            unet,
            name,
            classes,
            concepts: BTreeMap::new(),
        })
    }

    /// A diffusers UNet2DModel directory with an optional `classes.json`
    /// (without it the classes are named by index).
    pub fn load(dir: &Path) -> Result<Self, EmbeddedError> {
        let unet = UNet2DModel::load(dir, &Device::Cpu)?;
        let rows = unet.null_class().unwrap_or(0);
        let path = dir.join(CLASSES_FILE);
        let classes = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<String>>(&bytes).map_err(|e| {
                EmbeddedError::Classes {
                    path: path.clone(),
                    detail: format!("not a JSON array of class names: {e}"),
                }
            })?,
            Err(_) => (0..rows).map(|i| i.to_string()).collect(),
        };
        if classes.len() > rows {
            return Err(EmbeddedError::Classes {
                path,
                detail: format!(
                    "{} classes but the model has {rows} class rows",
                    classes.len()
                ),
            });
        }
        Self::new(unet, dir.display().to_string(), classes)
    }

    pub fn unet(&self) -> &UNet2DModel {
        &self.unet
    }

    /// The class index of `name`, if the model knows it.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }
}

impl Generator for EmbeddedGenerator {
    fn info(&self) -> GeneratorInfo {
        let size = self.unet.config().sample_size.map_or((32, 32), |s| s.hw());
        GeneratorInfo {
            name: self.name.clone(),
            weights_sha256: self.unet.weights_sha256().map(str::to_string),
            image_size: size,
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
        let b = x.dim(0)?;
        let t = Tensor::new(&[(sigma * TIMESTEPS_PER_SIGMA) as f32], x.device())?;
        let time = self
            .unet
            .time_embedding(&t, b)
            .map_err(candle_core::Error::wrap)?;
        let conditioning = (time + embedding)?;
        self.unet
            .forward_with_embedding(x, &conditioning)
            .map_err(candle_core::Error::wrap)
    }
}

/// The model that ships inside the binary: trained by `semaug train` on CIFAR-10 with
/// 5 % of the labels (see `models/embedded/README.md`).
pub mod shipped {
    use super::*;
    use crate::unet::{sha256_hex, UNet2DConfig};

    const CONFIG: &str = include_str!("../../../models/embedded/config.json");
    const WEIGHTS: &[u8] =
        include_bytes!("../../../models/embedded/diffusion_pytorch_model.safetensors");
    const CLASSES: &str = include_str!("../../../models/embedded/classes.json");

    /// The name outputs record for the shipped model.
    pub const NAME: &str = "embedded";

    /// Load the shipped model (a few MB of f16 weights, converted to f32).
    pub fn load() -> Result<EmbeddedGenerator, EmbeddedError> {
        let bad = |detail: String| EmbeddedError::Classes {
            path: PathBuf::from("<shipped model>"),
            detail,
        };
        let config =
            UNet2DConfig::from_json(CONFIG).map_err(|e| bad(format!("config.json: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(WEIGHTS, &Device::Cpu)
            .map_err(|e| bad(format!("weights: {e}")))?;
        let mut unet = UNet2DModel::from_tensors(&config, tensors, &Device::Cpu)?;
        unet.weights_sha256 = Some(sha256_hex(WEIGHTS));
        let classes: Vec<String> =
            serde_json::from_str(CLASSES).map_err(|e| bad(format!("classes.json: {e}")))?;
        EmbeddedGenerator::new(unet, NAME.to_string(), classes)
    }
}
