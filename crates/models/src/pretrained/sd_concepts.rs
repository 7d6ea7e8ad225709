//! Textual inversion for Stable Diffusion through the concept seam
//! ([`crate::concepts::ConceptBackend`]).
//!
//! A concept is one new row of the text encoder's input-embedding table, for a new
//! token (e.g. `<cat>`) added to the tokenizer. The learner holds a copy of the pipeline
//! with the token registered and the prompt template filled with it (`a photo of a
//! <cat>`); the loss flows through the frozen text encoder and UNet into that row alone.
//! Images are learned in VAE latent space (posterior mean, scaled), as diffusers'
//! `textual_inversion.py` does. The learned rows load back with
//! [`SdGenerator::add_concept`] and are saved in the `learned_embeds.safetensors` layout.

use candle_core::{DType, Tensor};
use semaug_core::Generator;

use super::error::PretrainedError;
use super::sd::SdGenerator;
use crate::concepts::{ConceptBackend, ConceptError, ConceptInit};
use crate::sd::clip::ConceptEmbedding;

/// A Stable Diffusion pipeline learning the row of one new token.
pub struct SdConceptLearner {
    generator: SdGenerator,
    token_id: u32,
    /// The tokenized prompt with the new token, `[1, L]`.
    prompt_ids: Tensor,
}

impl SdConceptLearner {
    /// A learner for `token` (new to the tokenizer) in `generator`'s prompt template.
    pub fn new(generator: &SdGenerator, token: &str) -> Result<Self, PretrainedError> {
        let mut generator = generator.clone();
        let width = generator.text_encoder().config().hidden_size;
        let device = generator
            .text_encoder()
            .token_embedding_table()
            .device()
            .clone();
        let placeholder = Tensor::zeros(width, DType::F32, &device)?;
        let token_id = generator.add_concept(token, placeholder)?;
        let prompt = generator
            .prompt(&semaug_core::Condition::Concept(token.to_string()))
            .map_err(|e| PretrainedError::Unsupported(e.to_string()))?;
        let prompt_ids = generator
            .tokenizer()
            .encode_batch(&[prompt.as_str()], &device)?;
        Ok(Self {
            generator,
            token_id,
            prompt_ids,
        })
    }

    /// The mean input embedding of `text`'s tokens (start/end/padding excluded).
    fn word_embedding(&self, text: &str) -> Result<Tensor, ConceptError> {
        let tokenizer = self.generator.tokenizer();
        let ids: Vec<u32> = tokenizer
            .encode_unpadded(text)
            .map_err(|e| ConceptError::Config(e.to_string()))?
            .into_iter()
            .filter(|&id| id != tokenizer.bos_id() && id != tokenizer.eos_id())
            .collect();
        if ids.is_empty() {
            return Err(ConceptError::Config(format!(
                "init word `{text}` has no tokens; give a word such as `object`"
            )));
        }
        let table = self.generator.text_encoder().token_embedding_table();
        let ids = Tensor::new(ids, table.device())?;
        Ok(table.index_select(&ids, 0)?.mean(0)?)
    }
}

impl ConceptBackend for SdConceptLearner {
    /// `Null`: the mean of the whole vocabulary; a class: its name's words; a word: its
    /// tokens (averaged when it splits into several).
    fn concept_init(&self, init: &ConceptInit) -> Result<Tensor, ConceptError> {
        let row = match init {
            ConceptInit::Null => {
                let table = self.generator.text_encoder().token_embedding_table();
                table.mean(0)?
            }
            ConceptInit::Class(c) => {
                let name = self.generator.class_names.get(*c).ok_or_else(|| {
                    ConceptError::Config(format!(
                        "init class {c}: {} class names were given",
                        self.generator.class_names.len()
                    ))
                })?;
                self.word_embedding(name)?
            }
            ConceptInit::Word(word) => self.word_embedding(word)?,
        };
        Ok(row.detach())
    }

    fn concept_encode(&self, pixels: &Tensor) -> Result<Tensor, ConceptError> {
        Ok(self.generator.encode(pixels)?)
    }

    /// The conditional velocity of each row at its own sigma (the VP adapter maps one
    /// sigma to one timestep, so rows run one at a time).
    fn concept_velocity(
        &self,
        concept: &Tensor,
        x: &Tensor,
        sigmas: &Tensor,
    ) -> Result<Tensor, ConceptError> {
        let encoder = self.generator.text_encoder();
        let spliced = ConceptEmbedding {
            id: self.token_id,
            row: concept,
        };
        let inputs = encoder
            .embed_tokens(&self.prompt_ids, &[spliced])
            .map_err(candle_core::Error::wrap)?;
        let context = encoder
            .forward_embeddings(&inputs)
            .map_err(candle_core::Error::wrap)?
            .last_hidden_state;
        let sigmas: Vec<f32> = sigmas.to_vec1()?;
        let rows = sigmas
            .iter()
            .enumerate()
            .map(|(i, &sigma)| {
                self.generator
                    .velocity(&x.narrow(0, i, 1)?, sigma as f64, &context)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&rows, 0)?)
    }
}
