//! Pretrained diffusers checkpoints as [`semaug_core::Generator`]s, found offline.
//!
//! * [`vp`]: the adapter from discrete-time variance-preserving models (epsilon / v /
//!   sample prediction over `alphas_cumprod`) to the sigma convention; deterministic DDIM
//!   is Euler in flow space.
//! * [`unet2d`]: [`Unet2dGenerator`], a DDPM/DDIM `UNet2DModel` in pixel space.
//! * [`latent_pipeline`]: [`LatentGenerator`], what the text-prompted pipelines in a VAE's
//!   latent space share (prompts per condition, VAE encode/decode, the weights hash).
//! * [`sd`]: [`SdGenerator`], a Stable Diffusion 1.x/2.x pipeline (VAE latents, CLIP
//!   prompts, class prompts and textual-inversion concepts).
//! * [`sd3`]: [`Sd3Generator`], a Stable Diffusion 3 pipeline (16-channel VAE, CLIP-L/G +
//!   T5 prompts, the MMDiT velocity on the scheduler's shifted grid).
//! * [`sd_concepts`]: textual inversion for Stable Diffusion ([`SdConceptLearner`]).
//! * [`resolve`](mod@resolve): `--model` specs (`embedded`, a folder, or a Hugging Face
//!   id read from the local cache, never the network) and the cache listing.
//! * [`device`]: networks on a GPU, the integration loop on the CPU ([`OnDevice`]).
//! * [`labels`]: a dataset's class names as conditions, for any loaded model.
//! * [`weights_file`]: safetensors headers validated before any tensor is read.
//!
//! Key decision: every backend speaks the one time convention; the schedule mapping lives
//! in [`vp`] and nowhere else.

pub mod device;
pub mod error;
pub mod labels;
pub mod latent_pipeline;
pub mod resolve;
pub mod sd;
pub mod sd3;
pub mod sd_concepts;
pub mod unet2d;
pub mod vp;
pub mod weights_file;

pub use device::{parse_device, OnDevice};
pub use error::PretrainedError;
pub use labels::{concept_token, ClassConditions};
pub use latent_pipeline::{LatentGenerator, LatentNetworks};
pub use resolve::{
    list_models, load, load_as, resolve, CachedModel, LoadedModel, ModelSource, ResolvedModel,
};
pub use sd::SdGenerator;
pub use sd3::Sd3Generator;
pub use sd_concepts::SdConceptLearner;
pub use unet2d::Unet2dGenerator;
pub use vp::{flow_to_vp, vp_to_flow, VpSchedule};
pub use weights_file::{check_safetensors, SafetensorsHeader};
