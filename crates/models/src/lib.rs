//! semaug-models: the generator networks.
//!
//! Principal types: [`unet::UNet2DModel`] (the embedded class-conditional pixel-space UNet)
//! and its [`unet::UNet2DConfig`] with the `test`, `small` (default) and `base` presets.
//!
//! Key decision: the embedded model's config.json and weight names are exactly diffusers
//! `UNet2DModel`'s, so checkpoints move both ways between this crate and diffusers.

pub mod concepts;
pub mod conditions;
pub mod embedded;
pub mod flow_training;
pub mod pretrained;
pub mod sd;
pub mod sd3;
pub mod unet;
