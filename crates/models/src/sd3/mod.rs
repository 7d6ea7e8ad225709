//! Stable Diffusion 3 components in the diffusers folder layout, numerically equal to
//! diffusers / transformers (proven on the `sd3-tiny` golden fixtures).
//!
//! * [`Sd3Transformer2DModel`]: the MMDiT denoiser from `transformer/` (SD3.0 style),
//!   which predicts the flow velocity `noise - x0` at `timestep = sigma * 1000`.
//! * [`T5EncoderModel`] and [`T5Tokenizer`]: the third text encoder (`text_encoder_3/`,
//!   `tokenizer_3/`), relative-position attention and gated-GELU, padded to 256 tokens.
//! * [`Sd3TextEncoders`]: the pipeline's prompt encoding (two projecting CLIPs from
//!   [`crate::sd`], penultimate states and pooled vectors, plus T5).
//! * [`FlowMatchSchedule`]: `FlowMatchEulerDiscreteScheduler`'s shifted sigma grid.
//!
//! The VAE is [`crate::sd::AutoencoderKl`] (16 channels, no quant convs, `shift_factor`).
//!
//! Key decision: SD3's rectified flow is this project's time convention (sigma = 1 noise,
//! `x = (1 - sigma) x0 + sigma noise`, `v = noise - x0`), so no adapter sits between the
//! transformer and the engine; diffusers' sampler is Euler on [`FlowMatchSchedule::grid`].

pub mod mmdit;
pub mod scheduler;
pub mod t5;
pub mod t5_tokenizer;
pub mod text;

pub use mmdit::{Sd3Intermediates, Sd3Transformer2DModel, Sd3TransformerConfig};
pub use scheduler::{FlowMatchConfig, FlowMatchSchedule};
pub use t5::{T5Config, T5EncoderModel};
pub use t5_tokenizer::{T5Tokenizer, T5_MAX_LENGTH};
pub use text::{joint_prompt_embeds, ClipWithProjection, Sd3PromptEmbeds, Sd3TextEncoders};
