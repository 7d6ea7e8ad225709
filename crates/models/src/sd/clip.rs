//! The CLIP text encoder of Stable Diffusion, differentiable end to end.
//!
//! Ports `CLIPTextTransformer` / `CLIPTextModel` (and the projection of
//! `CLIPTextModelWithProjection`) from transformers `models/clip/modeling_clip.py`: token +
//! position embeddings, pre-norm encoder layers (causal self-attention, `fc1 -> act -> fc2`),
//! a final layer norm, and the pooled output at the first EOS token. Weight names are the
//! checkpoint's (`text_model.embeddings.token_embedding.weight`, ...; the `text_model.`
//! prefix is optional).
//!
//! Textual inversion trains one token-embedding row through this model, so the input
//! embeddings can be injected ([`ClipTextModel::forward_embeddings`]) and a learned row
//! spliced in differentiably ([`ClipTextModel::embed_tokens`]). No fused candle op is used
//! (they have no backward pass).

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::error::SdError;
use super::layers::{attention, merge_heads, split_heads, Activation, LayerNorm, Linear};
use super::weights::{build_checked, first_existing, read_json, read_safetensors};

/// The config file of a transformers model folder.
pub const CLIP_CONFIG_FILE: &str = "config.json";
/// The weights file names tried, in order.
pub const CLIP_WEIGHTS_FILES: [&str; 2] = ["model.safetensors", "model.fp16.safetensors"];

fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_eos() -> u32 {
    49407
}

/// transformers `CLIPTextConfig` (the fields the forward pass uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// `2` selects transformers' legacy pooling (at the largest id), as old SD configs say.
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
    /// Width of `text_projection` (only `CLIPTextModelWithProjection` has one).
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

impl ClipTextConfig {
    fn check(&self, origin: &str) -> Result<Activation, SdError> {
        let bad = |field, detail: String| SdError::unsupported(origin, "CLIP text", field, detail);
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "= {} must divide hidden_size = {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.num_hidden_layers == 0 {
            return Err(bad("num_hidden_layers", "must be at least 1".into()));
        }
        Activation::from_name(&self.hidden_act).ok_or_else(|| {
            bad(
                "hidden_act",
                format!(
                    "= {:?}; supported: quick_gelu, gelu, gelu_new",
                    self.hidden_act
                ),
            )
        })
    }
}

/// A learned token for textual inversion: its id (from
/// [`super::ClipTokenizer::add_concept_token`]) and its embedding row `[hidden_size]`,
/// typically a `Var`.
#[derive(Debug, Clone, Copy)]
pub struct ConceptEmbedding<'a> {
    pub id: u32,
    pub row: &'a Tensor,
}

/// The hidden states SD uses.
#[derive(Debug, Clone)]
pub struct ClipHiddenStates {
    /// `[B, L, D]` after the final layer norm (`last_hidden_state`, SD 1.x conditioning).
    pub last_hidden_state: Tensor,
    /// `[B, L, D]` input of the last layer, no final norm (`hidden_states[-2]`, "clip skip").
    pub penultimate_hidden_state: Tensor,
}

/// [`ClipHiddenStates`] plus the pooled output.
#[derive(Debug, Clone)]
pub struct ClipTextOutput {
    pub last_hidden_state: Tensor,
    pub penultimate_hidden_state: Tensor,
    /// `[B, D]` `last_hidden_state` at each row's first EOS (`pooler_output`).
    pub pooler_output: Tensor,
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    activation: Activation,
}

impl EncoderLayer {
    fn new(
        c: &ClipTextConfig,
        activation: Activation,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let attn = vb.pp("self_attn");
        Ok(Self {
            layer_norm1: LayerNorm::new(d, c.layer_norm_eps, vb.pp("layer_norm1"))?,
            q_proj: Linear::new(d, d, attn.pp("q_proj"))?,
            k_proj: Linear::new(d, d, attn.pp("k_proj"))?,
            v_proj: Linear::new(d, d, attn.pp("v_proj"))?,
            out_proj: Linear::new(d, d, attn.pp("out_proj"))?,
            layer_norm2: LayerNorm::new(d, c.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: Linear::new(d, c.intermediate_size, vb.pp("mlp").pp("fc1"))?,
            fc2: Linear::new(c.intermediate_size, d, vb.pp("mlp").pp("fc2"))?,
            heads: c.num_attention_heads,
            activation,
        })
    }

    /// `x [B, L, D]`, additive `causal_mask [L, L]` -> `[B, L, D]`.
    fn forward(&self, x: &Tensor, causal_mask: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.layer_norm1.forward(x)?;
        let q = split_heads(&self.q_proj.forward(&h)?, self.heads)?;
        let k = split_heads(&self.k_proj.forward(&h)?, self.heads)?;
        let v = split_heads(&self.v_proj.forward(&h)?, self.heads)?;
        let head_dim = q.dim(3)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let attended = merge_heads(&attention(&q, &k, &v, scale, Some(causal_mask))?)?;
        let x = (x + self.out_proj.forward(&attended)?)?;
        let h = self.layer_norm2.forward(&x)?;
        let h = self.activation.apply(&self.fc1.forward(&h)?)?;
        x + self.fc2.forward(&h)?
    }
}

/// transformers `CLIPTextModel` (with the optional projection of the `WithProjection` class).
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    config: ClipTextConfig,
    /// `[vocab_size, D]`, frozen; concept rows are spliced in by [`Self::embed_tokens`].
    token_embedding: Tensor,
    /// `[max_position_embeddings, D]`.
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_layer_norm: LayerNorm,
    text_projection: Option<Linear>,
}

impl ClipTextModel {
    /// Loads a transformers `CLIPTextModel` folder (`config.json` + `model.safetensors`,
    /// e.g. SD's `text_encoder/`) onto `device`, weights as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16); the hidden
    /// states come out in `dtype` too.
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, SdError> {
        let config_path = dir.join(CLIP_CONFIG_FILE);
        let config: ClipTextConfig = read_json(&config_path, "CLIP text")?;
        config.check(&config_path.display().to_string())?;
        let path = first_existing(dir, &CLIP_WEIGHTS_FILES);
        let tensors = read_safetensors(&path, "the CLIP text encoder weights")?;
        Self::from_tensors(&config, tensors, device, dtype, &path.display().to_string())
    }

    /// A model from checkpoint tensors (names with or without the `text_model.` prefix),
    /// weights as `dtype` on `device`.
    pub fn from_tensors(
        config: &ClipTextConfig,
        tensors: std::collections::HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, SdError> {
        let activation = config.check(origin)?;
        let prefixed = tensors.contains_key("text_model.embeddings.token_embedding.weight");
        let has_projection = tensors.contains_key("text_projection.weight");
        build_checked(tensors, device, dtype, origin, &["position_ids"], |vb| {
            let text = if prefixed {
                vb.pp("text_model")
            } else {
                vb.clone()
            };
            Self::build(config, activation, has_projection, text, vb)
        })
    }

    fn build(
        c: &ClipTextConfig,
        activation: Activation,
        has_projection: bool,
        text: VarBuilder,
        root: VarBuilder,
    ) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let emb = text.pp("embeddings");
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::new(c, activation, text.pp("encoder.layers").pp(i)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let text_projection = if has_projection {
            let width = c.projection_dim.unwrap_or(d);
            Some(Linear::no_bias(d, width, root.pp("text_projection"))?)
        } else {
            None
        };
        Ok(Self {
            config: c.clone(),
            token_embedding: emb.get((c.vocab_size, d), "token_embedding.weight")?,
            position_embedding: emb
                .get((c.max_position_embeddings, d), "position_embedding.weight")?,
            layers,
            final_layer_norm: LayerNorm::new(d, c.layer_norm_eps, text.pp("final_layer_norm"))?,
            text_projection,
        })
    }

    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// The weights' dtype, in which embeddings and hidden states come out.
    pub fn dtype(&self) -> DType {
        self.token_embedding.dtype()
    }

    /// The frozen token-embedding table `[vocab_size, D]` (e.g. to initialise a concept row
    /// from an existing token's row).
    pub fn token_embedding_table(&self) -> &Tensor {
        &self.token_embedding
    }

    /// `ids [B, L]` (u8, u32 or i64) `-> [B, L, D]` rows of the token-embedding table.
    pub fn token_embedding(&self, ids: &Tensor) -> Result<Tensor, SdError> {
        self.embed_tokens(ids, &[])
    }

    /// `ids [B, L] -> [B, L, D]`, where every id of a concept takes that concept's `row`
    /// (differentiably, so a `Var` row receives gradients) and every other id its table row.
    /// Concept ids may lie past the table (added tokens); other ids must be inside it.
    pub fn embed_tokens(
        &self,
        ids: &Tensor,
        concepts: &[ConceptEmbedding],
    ) -> Result<Tensor, SdError> {
        let (b, l) = ids
            .dims2()
            .map_err(|_| SdError::input("ids", format!("expected [B, L], got {:?}", ids.dims())))?;
        let flat: Vec<u32> = ids.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?;
        let vocab = self.config.vocab_size;
        let d = self.config.hidden_size;
        let mut lookup = Vec::with_capacity(flat.len());
        for &id in &flat {
            let is_concept = concepts.iter().any(|c| c.id == id);
            match (is_concept, (id as usize) < vocab) {
                (true, _) => lookup.push(0),
                (false, true) => lookup.push(id),
                (false, false) => {
                    return Err(SdError::input(
                        "ids",
                        format!(
                            "token id {id} is outside the {vocab}-row embedding table and is no \
                             concept token given to the encoder"
                        ),
                    ))
                }
            }
        }
        let device = self.token_embedding.device();
        let lookup = Tensor::from_vec(lookup, b * l, device)?;
        let mut embeds = self
            .token_embedding
            .index_select(&lookup, 0)?
            .reshape((b, l, d))?;
        for concept in concepts {
            if concept.row.dims() != [d] {
                return Err(SdError::input(
                    "concept row",
                    format!(
                        "concept id {} has a row of shape {:?}, the encoder needs [{d}]",
                        concept.id,
                        concept.row.dims()
                    ),
                ));
            }
            let mask: Vec<f32> = flat
                .iter()
                .map(|&id| if id == concept.id { 1.0 } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, (b, l, 1), device)?.to_dtype(self.dtype())?;
            // A concept row (learned in f32) joins a half-precision table in its dtype.
            let row = concept.row.to_dtype(self.dtype())?.reshape((1, 1, d))?;
            // Where the mask is 1 the table row is replaced by the concept row.
            embeds = (embeds.broadcast_mul(&(1.0 - &mask)?)? + mask.broadcast_mul(&row)?)?;
        }
        Ok(embeds)
    }

    /// Runs the encoder on input embeddings `[B, L, D]` (L <= max_position_embeddings);
    /// position embeddings are added here, as in transformers.
    pub fn forward_embeddings(&self, inputs_embeds: &Tensor) -> Result<ClipHiddenStates, SdError> {
        let (_, l, d) = inputs_embeds.dims3().map_err(|_| {
            SdError::input(
                "inputs_embeds",
                format!("expected [B, L, D], got {:?}", inputs_embeds.dims()),
            )
        })?;
        if d != self.config.hidden_size || l == 0 || l > self.config.max_position_embeddings {
            return Err(SdError::input(
                "inputs_embeds",
                format!(
                    "shape {:?}: needs D = {} and 1 <= L <= {}",
                    inputs_embeds.dims(),
                    self.config.hidden_size,
                    self.config.max_position_embeddings
                ),
            ));
        }
        let positions = self.position_embedding.narrow(0, 0, l)?.unsqueeze(0)?;
        let mut x = inputs_embeds
            .to_dtype(self.dtype())?
            .broadcast_add(&positions)?;
        let mask = causal_mask(l, inputs_embeds.device())?;
        let last = self.layers.len() - 1;
        let mut penultimate = None;
        for (i, layer) in self.layers.iter().enumerate() {
            if i == last {
                penultimate = Some(x.clone());
            }
            x = layer.forward(&x, &mask)?;
        }
        let penultimate_hidden_state = match penultimate {
            Some(p) => p,
            None => x.clone(),
        };
        Ok(ClipHiddenStates {
            last_hidden_state: self.final_layer_norm.forward(&x)?,
            penultimate_hidden_state,
        })
    }

    /// `ids [B, L] ->` hidden states and pooled output (no attention mask, as SD).
    pub fn forward(&self, ids: &Tensor) -> Result<ClipTextOutput, SdError> {
        let hidden = self.forward_embeddings(&self.token_embedding(ids)?)?;
        let pooler_output = self.pooled_output(&hidden.last_hidden_state, ids)?;
        Ok(ClipTextOutput {
            last_hidden_state: hidden.last_hidden_state,
            penultimate_hidden_state: hidden.penultimate_hidden_state,
            pooler_output,
        })
    }

    /// `last_hidden_state [B, L, D]` at each row's first EOS id (transformers' pooling; with
    /// the legacy `eos_token_id = 2` config, at the row's largest id) `-> [B, D]`.
    pub fn pooled_output(
        &self,
        last_hidden_state: &Tensor,
        ids: &Tensor,
    ) -> Result<Tensor, SdError> {
        let rows: Vec<Vec<u32>> = ids.to_dtype(DType::U32)?.to_vec2()?;
        let eos = self.config.eos_token_id;
        let mut picked = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let position = if eos == 2 {
                first_argmax(row)
            } else {
                row.iter().position(|&id| id == eos).unwrap_or(0)
            };
            picked.push(last_hidden_state.get(i)?.get(position)?.unsqueeze(0)?);
        }
        Ok(Tensor::cat(&picked, 0)?)
    }

    /// Whether the checkpoint has a `text_projection` (`CLIPTextModelWithProjection`).
    pub fn has_projection(&self) -> bool {
        self.text_projection.is_some()
    }

    /// `text_projection(pooled) [B, projection_dim]` for a `CLIPTextModelWithProjection`
    /// checkpoint (`text_embeds`); `None` when the checkpoint has no projection.
    pub fn text_embeds(&self, pooled: &Tensor) -> Result<Option<Tensor>, SdError> {
        match &self.text_projection {
            Some(p) => Ok(Some(p.forward(pooled)?)),
            None => Ok(None),
        }
    }
}

/// The position of the first largest id (`torch.argmax`).
fn first_argmax(row: &[u32]) -> usize {
    let mut best = 0;
    for (i, &id) in row.iter().enumerate() {
        if id > row[best] {
            best = i;
        }
    }
    best
}

/// `[L, L]`: 0 on and below the diagonal, the most negative f32 above it (transformers'
/// causal mask; finite, so no `inf * 0` can appear in the backward pass).
fn causal_mask(l: usize, device: &Device) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..l * l)
        .map(|k| if k % l > k / l { f32::MIN } else { 0.0 })
        .collect();
    Tensor::from_vec(values, (l, l), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_hides_the_future_only() {
        let m: Vec<Vec<f32>> = causal_mask(3, &Device::Cpu)
            .and_then(|m| m.to_vec2())
            .expect("mask");
        assert_eq!(m[0], vec![0.0, f32::MIN, f32::MIN]);
        assert_eq!(m[1], vec![0.0, 0.0, f32::MIN]);
        assert_eq!(m[2], vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn legacy_pooling_takes_the_first_largest_id() {
        assert_eq!(first_argmax(&[3, 9, 1, 9]), 1);
        assert_eq!(first_argmax(&[5]), 0);
    }
}
