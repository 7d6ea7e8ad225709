//! SD3 prompt encoding: `StableDiffusion3Pipeline.encode_prompt` for a batch of prompts.
//!
//! * CLIP-L (`tokenizer/`, `text_encoder/`) and CLIP-G (`tokenizer_2/`, `text_encoder_2/`),
//!   both `CLIPTextModelWithProjection`: their penultimate hidden states (`hidden_states[-2]`,
//!   no final norm) and their projected pooled outputs (`text_embeds`).
//! * T5 (`tokenizer_3/`, `text_encoder_3/`): `last_hidden_state` of 256 tokens; a pipeline
//!   saved without T5 gets zeros of the transformer's `joint_attention_dim`, as diffusers.
//! * `prompt_embeds = cat([pad(cat([clip_l, clip_g], -1), to the T5 width), t5], -2)`,
//!   `[B, 77 + 256, joint]`; `pooled = cat([l_text_embeds, g_text_embeds], -1)`.
//!
//! Each CLIP reuses [`crate::sd::ClipTextModel`] (which already carries the projection and
//! the penultimate state) and [`crate::sd::ClipTokenizer`] (which reads CLIP-G's `"!"` pad
//! token from `tokenizer_config.json`).
//!
//! Every encoder loads in one dtype ([`Sd3TextEncoders::load_as`]); the conditioning comes
//! out in it.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};

use super::t5::T5EncoderModel;
use super::t5_tokenizer::T5Tokenizer;
use crate::sd::error::SdError;
use crate::sd::{ClipTextModel, ClipTokenizer};

/// The prompt conditioning of SD3: text tokens and the pooled vector.
#[derive(Debug, Clone)]
pub struct Sd3PromptEmbeds {
    /// `[B, 77 + 256, joint_attention_dim]`.
    pub prompt_embeds: Tensor,
    /// `[B, clip_l projection + clip_g projection]`.
    pub pooled: Tensor,
}

/// One CLIP's features of a batch of prompts.
#[derive(Debug, Clone)]
pub struct ClipFeatures {
    /// `[B, 77]` the token ids.
    pub ids: Tensor,
    /// `[B, 77, D]` `hidden_states[-2]`.
    pub penultimate: Tensor,
    /// `[B, projection_dim]` `text_embeds`.
    pub text_embeds: Tensor,
}

/// A CLIP tokenizer and its projecting text encoder.
#[derive(Debug, Clone)]
pub struct ClipWithProjection {
    pub tokenizer: ClipTokenizer,
    pub encoder: ClipTextModel,
}

impl ClipWithProjection {
    fn load(
        tokenizer: &Path,
        encoder: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, SdError> {
        let encoder_model = ClipTextModel::load_as(encoder, device, dtype)?;
        if !encoder_model.has_projection() {
            return Err(SdError::unsupported(
                encoder.display().to_string(),
                "CLIP text",
                "text_projection",
                "is missing; SD3 needs CLIPTextModelWithProjection weights",
            ));
        }
        Ok(Self {
            tokenizer: ClipTokenizer::load(tokenizer)?,
            encoder: encoder_model,
        })
    }

    /// The features SD3 takes from this CLIP for `prompts`.
    pub fn encode(&self, prompts: &[&str], device: &Device) -> Result<ClipFeatures, SdError> {
        let ids = self.tokenizer.encode_batch(prompts, device)?;
        let out = self.encoder.forward(&ids)?;
        let text_embeds = self
            .encoder
            .text_embeds(&out.pooler_output)?
            .ok_or_else(|| SdError::input("text encoder", "has no text_projection"))?;
        Ok(ClipFeatures {
            ids,
            penultimate: out.penultimate_hidden_state,
            text_embeds,
        })
    }

    /// `projection_dim` (the hidden size when the config leaves it out).
    pub fn projection_dim(&self) -> usize {
        let c = self.encoder.config();
        c.projection_dim.unwrap_or(c.hidden_size)
    }
}

/// T5 tokenizer and encoder.
#[derive(Debug, Clone)]
pub struct T5Text {
    pub tokenizer: T5Tokenizer,
    pub encoder: T5EncoderModel,
}

/// The three text encoders of an SD3 pipeline folder.
#[derive(Debug, Clone)]
pub struct Sd3TextEncoders {
    pub clip_l: ClipWithProjection,
    pub clip_g: ClipWithProjection,
    /// `None` for a pipeline saved without T5.
    pub t5: Option<T5Text>,
    /// Width of the joint text tokens (the transformer's `joint_attention_dim`).
    joint_dim: usize,
    device: Device,
}

impl Sd3TextEncoders {
    /// Loads the tokenizers and encoders of the pipeline folder `dir`. `joint_dim` is the
    /// transformer's `joint_attention_dim`; T5 is optional (no `text_encoder_3/`).
    pub fn load(dir: &Path, joint_dim: usize, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, joint_dim, device, DType::F32)
    }

    /// [`Self::load`] with every encoder's weights as `dtype` (f32, f16 or bf16).
    pub fn load_as(
        dir: &Path,
        joint_dim: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, SdError> {
        let clip_l = ClipWithProjection::load(
            &dir.join("tokenizer"),
            &dir.join("text_encoder"),
            device,
            dtype,
        )?;
        let clip_g = ClipWithProjection::load(
            &dir.join("tokenizer_2"),
            &dir.join("text_encoder_2"),
            device,
            dtype,
        )?;
        let t5_dir = dir.join("text_encoder_3");
        let t5 = if t5_dir.is_dir() {
            Some(T5Text {
                tokenizer: T5Tokenizer::load(&dir.join("tokenizer_3"))?,
                encoder: T5EncoderModel::load_as(&t5_dir, device, dtype)?,
            })
        } else {
            None
        };
        let encoders = Self {
            clip_l,
            clip_g,
            t5,
            joint_dim,
            device: device.clone(),
        };
        encoders.check_widths(dir)?;
        Ok(encoders)
    }

    fn check_widths(&self, dir: &Path) -> Result<(), SdError> {
        let clip =
            self.clip_l.encoder.config().hidden_size + self.clip_g.encoder.config().hidden_size;
        let t5 = self.t5.as_ref().map(|t| t.encoder.config().d_model);
        if clip > self.joint_dim || t5.is_some_and(|d| d != self.joint_dim) {
            return Err(SdError::unsupported(
                dir.display().to_string(),
                "SD3 pipeline",
                "joint_attention_dim",
                format!(
                    "= {} must equal the T5 width ({t5:?}) and hold both CLIP widths ({clip})",
                    self.joint_dim
                ),
            ));
        }
        Ok(())
    }

    /// Width of the pooled vector (`pooled_projection_dim`).
    pub fn pooled_dim(&self) -> usize {
        self.clip_l.projection_dim() + self.clip_g.projection_dim()
    }

    /// `[B, 256, joint]` T5 states of `prompts`, zeros without T5.
    pub fn t5_states(&self, prompts: &[&str]) -> Result<Tensor, SdError> {
        match &self.t5 {
            Some(t5) => {
                let ids = t5.tokenizer.encode_batch(prompts, &self.device)?;
                t5.encoder.forward(&ids)
            }
            None => Ok(Tensor::zeros(
                (
                    prompts.len(),
                    super::t5_tokenizer::T5_MAX_LENGTH,
                    self.joint_dim,
                ),
                self.clip_l.encoder.dtype(),
                &self.device,
            )?),
        }
    }

    /// The SD3 conditioning of `prompts` (one row each).
    pub fn encode(&self, prompts: &[&str]) -> Result<Sd3PromptEmbeds, SdError> {
        if prompts.is_empty() {
            return Err(SdError::input("prompts", "at least one prompt is needed"));
        }
        let l = self.clip_l.encode(prompts, &self.device)?;
        let g = self.clip_g.encode(prompts, &self.device)?;
        let t5 = self.t5_states(prompts)?;
        Ok(Sd3PromptEmbeds {
            prompt_embeds: joint_prompt_embeds(&l.penultimate, &g.penultimate, &t5)?,
            pooled: Tensor::cat(&[&l.text_embeds, &g.text_embeds], D::Minus1)?,
        })
    }
}

/// `cat([pad(cat([clip_l, clip_g], -1), to t5's width), t5], -2)`: `[B, 77, Dl]`,
/// `[B, 77, Dg]`, `[B, T, Dt] -> [B, 77 + T, Dt]`.
pub fn joint_prompt_embeds(
    clip_l: &Tensor,
    clip_g: &Tensor,
    t5: &Tensor,
) -> Result<Tensor, SdError> {
    let clip = Tensor::cat(&[clip_l, clip_g], D::Minus1)?;
    let (width, t5_width) = (clip.dim(D::Minus1)?, t5.dim(D::Minus1)?);
    if width > t5_width {
        return Err(SdError::input(
            "t5",
            format!("width {t5_width} is narrower than the CLIP features ({width})"),
        ));
    }
    let padded = clip.pad_with_zeros(D::Minus1, 0, t5_width - width)?;
    Ok(Tensor::cat(&[&padded, t5], 1)?)
}
