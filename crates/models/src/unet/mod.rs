//! The embedded generator network: a class-conditional pixel-space UNet whose config.json and
//! weight names are exactly diffusers `UNet2DModel`'s, so any `UNet2DModel` checkpoint with
//! the supported options loads here and ours loads in diffusers.
//!
//! Top to bottom: [`config`] (config.json, presets, validation), [`layers`] (the one conv and
//! the one group norm, where optimised kernels plug in), embeddings, resnet, attention, blocks,
//! the model, and [`io`] (diffusers directories). The null class for classifier-free guidance
//! is the **last** row of the class embedding (`num_class_embeds - 1`).

mod attention;
mod blocks;
pub mod config;
mod embeddings;
mod error;
pub mod io;
pub mod layers;
mod model;
mod resnet;
mod weights;

pub use config::{BlockKind, ConfigError, SampleSize, UNet2DConfig};
pub use error::UnetError;
pub use io::{read_config, sha256_hex, weights_sha256, WeightsDtype, CONFIG_FILE, WEIGHTS_FILE};
pub use model::{Conditioning, UNet2DModel};
