//! The T5 text encoder of SD3 (`text_encoder_3/`): transformers `T5EncoderModel`.
//!
//! Ports `T5Stack` as an encoder (`models/t5/modeling_t5.py`): token embeddings (`shared`,
//! not scaled), pre-norm layers of self-attention with a learned relative-position bias
//! (bucketed, computed by the first layer and shared by all) and a feed-forward block, each
//! with an RMS layer norm (`T5LayerNorm`: no mean, no bias) and a residual; a final RMS
//! norm. T5 attention does not scale its scores by `1/sqrt(d)`. The feed-forward block is
//! `wo(act(wi(x)))` or, gated (`feed_forward_proj = "gated-gelu"`, T5 v1.1 / SD3),
//! `wo(act(wi_0(x)) * wi_1(x))` with `gelu_new`, the tanh approximation.
//!
//! Weight names are the checkpoint's (`shared.weight`, `encoder.block.{i}.layer.0.
//! SelfAttention.{q,k,v,o}.weight`, ...); the tied `encoder.embed_tokens.weight` is taken
//! when `shared.weight` is absent. Sharded checkpoints (`model.safetensors.index.json`)
//! are read shard by shard. SD3 passes no attention mask: pads are attended to.
//!
//! Half precision follows transformers: the residual stream stays f32 (T5's activations
//! overflow f16), the norms compute in f32 and hand the layers the weights' dtype, and in
//! an f16 model the output projection `wo` of each feed-forward block keeps f32 weights
//! (transformers' `_keep_in_fp32_modules`). In an f32 model every cast is a no-op.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::sd::error::SdError;
use crate::sd::layers::{attention, merge_heads, split_heads, Linear};
use crate::sd::weights::{build_checked, first_existing, read_bytes, read_json, read_safetensors};

/// The config file of a transformers model folder.
pub const T5_CONFIG_FILE: &str = "config.json";
/// The single-file weights names tried, in order.
pub const T5_WEIGHTS_FILES: [&str; 2] = ["model.safetensors", "model.fp16.safetensors"];
/// The index of a sharded checkpoint (`weight_map`: tensor name -> shard file).
pub const T5_WEIGHTS_INDEX: &str = "model.safetensors.index.json";
const SHARED: &str = "shared.weight";
const TIED: &str = "encoder.embed_tokens.weight";

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}

/// transformers `T5Config` (the fields the encoder uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `relu`, `gelu`, `gated-gelu` (T5 v1.1, SD3), `gated-silu`, ...
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
}

/// The feed-forward activations T5 checkpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T5Activation {
    Relu,
    GeluErf,
    /// transformers `gelu_new`, the tanh approximation.
    GeluTanh,
    Silu,
}

impl T5Activation {
    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Relu => x.relu(),
            Self::GeluErf => x.gelu_erf(),
            Self::GeluTanh => x.gelu(),
            Self::Silu => x.silu(),
        }
    }
}

impl T5Config {
    /// The activation and whether the feed-forward block is gated, as transformers derives
    /// them from `feed_forward_proj` (`gated-gelu` means `gelu_new`).
    fn feed_forward(&self, origin: &str) -> Result<(T5Activation, bool), SdError> {
        let bad = |field, detail: String| SdError::unsupported(origin, "T5 encoder", field, detail);
        let (gated, name) = match self.feed_forward_proj.split_once('-') {
            Some(("gated", act)) => (true, act),
            None => (false, self.feed_forward_proj.as_str()),
            Some(_) => {
                return Err(bad(
                    "feed_forward_proj",
                    format!(
                        "= {:?}; expected `act` or `gated-act`",
                        self.feed_forward_proj
                    ),
                ))
            }
        };
        let activation = match (name, gated) {
            ("gelu", true) | ("gelu_new", _) => T5Activation::GeluTanh,
            ("gelu", false) => T5Activation::GeluErf,
            ("relu", _) => T5Activation::Relu,
            ("silu", _) => T5Activation::Silu,
            _ => {
                return Err(bad(
                    "feed_forward_proj",
                    format!(
                        "= {:?}; supported activations: relu, gelu, gelu_new, silu",
                        self.feed_forward_proj
                    ),
                ))
            }
        };
        if self.num_heads == 0 || self.num_layers == 0 || self.d_kv == 0 {
            return Err(bad(
                "num_heads",
                "num_heads, num_layers and d_kv must be at least 1".into(),
            ));
        }
        if self.relative_attention_num_buckets < 4 || self.relative_attention_max_distance < 2 {
            return Err(bad(
                "relative_attention_num_buckets",
                "needs at least 4 buckets and a max distance of at least 2".into(),
            ));
        }
        Ok((activation, gated))
    }
}

/// `T5LayerNorm`: `weight * x / sqrt(mean(x^2) + eps)` (RMS norm, no bias).
#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(dim: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    /// Normalised in f32, scaled in the weight's dtype (which the result has).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.to_dtype(DType::F32)?;
        let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(variance + self.eps)?.sqrt()?)?
            .to_dtype(self.weight.dtype())?
            .broadcast_mul(&self.weight)
    }
}

/// The relative-position bucket of `key - query` (transformers
/// `_relative_position_bucket`, bidirectional): half the buckets per sign, exact below
/// `num_buckets / 4`, logarithmic up to `max_distance`, in f32 as PyTorch computes it.
fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let base = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if distance < max_exact {
        return base + distance;
    }
    let ratio = distance as f32 / max_exact as f32;
    let log_range = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio.ln() / log_range * (half - max_exact) as f32) as usize;
    base + large.min(half - 1)
}

/// T5 self-attention with the optional relative-position bias table.
#[derive(Debug, Clone)]
struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    /// `[num_buckets, heads]`, only in the first layer.
    relative_attention_bias: Option<Tensor>,
}

impl SelfAttention {
    fn new(c: &T5Config, has_bias: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let inner = c.num_heads * c.d_kv;
        let relative_attention_bias = if has_bias {
            Some(vb.get(
                (c.relative_attention_num_buckets, c.num_heads),
                "relative_attention_bias.weight",
            )?)
        } else {
            None
        };
        Ok(Self {
            q: Linear::no_bias(c.d_model, inner, vb.pp("q"))?,
            k: Linear::no_bias(c.d_model, inner, vb.pp("k"))?,
            v: Linear::no_bias(c.d_model, inner, vb.pp("v"))?,
            o: Linear::no_bias(inner, c.d_model, vb.pp("o"))?,
            heads: c.num_heads,
            relative_attention_bias,
        })
    }

    /// `x [B, L, d_model]`, `bias [1, heads, L, L]` -> `[B, L, d_model]`.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let k = split_heads(&self.k.forward(x)?, self.heads)?;
        let v = split_heads(&self.v.forward(x)?, self.heads)?;
        // T5 folds the 1/sqrt(d) scale into its initialisation: scores are unscaled.
        self.o
            .forward(&merge_heads(&attention(&q, &k, &v, 1.0, Some(bias))?)?)
    }
}

/// `DenseReluDense` / `DenseGatedActDense`.
#[derive(Debug, Clone)]
struct FeedForward {
    wi: Linear,
    /// The linear (ungated) branch of a gated block.
    wi_1: Option<Linear>,
    wo: Linear,
    /// The dtype of `wo`'s weights: f32 in an f16 model, else the model's.
    wo_dtype: DType,
    activation: T5Activation,
}

impl FeedForward {
    fn new(
        c: &T5Config,
        activation: T5Activation,
        gated: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let (wi, wi_1) = if gated {
            (
                Linear::no_bias(c.d_model, c.d_ff, vb.pp("wi_0"))?,
                Some(Linear::no_bias(c.d_model, c.d_ff, vb.pp("wi_1"))?),
            )
        } else {
            (Linear::no_bias(c.d_model, c.d_ff, vb.pp("wi"))?, None)
        };
        // Its output overflows f16 in real T5 checkpoints.
        let wo_dtype = match vb.dtype() {
            DType::F16 => DType::F32,
            other => other,
        };
        Ok(Self {
            wi,
            wi_1,
            wo: Linear::no_bias(c.d_ff, c.d_model, vb.pp("wo").set_dtype(wo_dtype))?,
            wo_dtype,
            activation,
        })
    }

    /// `[B, L, d_model]` in the model's dtype -> `[B, L, d_model]` in `wo`'s dtype.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.activation.apply(&self.wi.forward(x)?)?;
        let h = match &self.wi_1 {
            Some(linear) => (h * linear.forward(x)?)?,
            None => h,
        };
        self.wo.forward(&h.to_dtype(self.wo_dtype)?)
    }
}

/// One `T5Block` of the encoder: attention then feed-forward, each pre-norm + residual.
#[derive(Debug, Clone)]
struct Block {
    attention_norm: RmsNorm,
    attention: SelfAttention,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

impl Block {
    /// `x [B, L, d_model]` the f32 residual stream -> the same.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let attended = self
            .attention
            .forward(&self.attention_norm.forward(x)?, bias)?;
        let x = (x + attended.to_dtype(DType::F32)?)?;
        let fed = self.ff.forward(&self.ff_norm.forward(&x)?)?;
        &x + fed.to_dtype(DType::F32)?
    }
}

/// transformers `T5EncoderModel`.
#[derive(Debug, Clone)]
pub struct T5EncoderModel {
    config: T5Config,
    /// `[vocab_size, d_model]`.
    shared: Tensor,
    blocks: Vec<Block>,
    final_layer_norm: RmsNorm,
}

impl T5EncoderModel {
    /// Loads a transformers `T5EncoderModel` folder (`config.json` + `model.safetensors`,
    /// or shards listed in `model.safetensors.index.json`) onto `device`, as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SdError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16; see the
    /// module docs for what stays f32).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, SdError> {
        let config_path = dir.join(T5_CONFIG_FILE);
        let config: T5Config = read_json(&config_path, "T5 encoder")?;
        let files = weight_files(dir)?;
        let mut tensors = HashMap::new();
        for file in &files {
            tensors.extend(read_safetensors(file, "the T5 encoder weights")?);
        }
        let origin = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Self::from_tensors(&config, tensors, device, dtype, &origin)
    }

    /// An encoder from checkpoint tensors (transformers names), weights as `dtype`.
    pub fn from_tensors(
        config: &T5Config,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, SdError> {
        let (activation, gated) = config.feed_forward(origin)?;
        // The embedding is tied: take `shared` and ignore its copy, or the copy alone.
        if !tensors.contains_key(SHARED) {
            if let Some(tied) = tensors.remove(TIED) {
                tensors.insert(SHARED.into(), tied);
            }
        }
        build_checked(tensors, device, dtype, origin, &[TIED], |vb| {
            let blocks = (0..config.num_layers)
                .map(|i| {
                    let layer = vb.pp("encoder.block").pp(i).pp("layer");
                    let eps = config.layer_norm_epsilon;
                    Ok(Block {
                        attention_norm: RmsNorm::new(
                            config.d_model,
                            eps,
                            layer.pp("0.layer_norm"),
                        )?,
                        attention: SelfAttention::new(config, i == 0, layer.pp("0.SelfAttention"))?,
                        ff_norm: RmsNorm::new(config.d_model, eps, layer.pp("1.layer_norm"))?,
                        ff: FeedForward::new(
                            config,
                            activation,
                            gated,
                            layer.pp("1.DenseReluDense"),
                        )?,
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Self {
                config: config.clone(),
                shared: vb.get((config.vocab_size, config.d_model), SHARED)?,
                blocks,
                final_layer_norm: RmsNorm::new(
                    config.d_model,
                    config.layer_norm_epsilon,
                    vb.pp("encoder.final_layer_norm"),
                )?,
            })
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// `ids [B, L]` (u8, u32 or i64) `-> last_hidden_state [B, L, d_model]` in the weights'
    /// dtype, no mask.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor, SdError> {
        let (b, l) = ids
            .dims2()
            .map_err(|_| SdError::input("ids", format!("expected [B, L], got {:?}", ids.dims())))?;
        let flat = ids.to_dtype(DType::U32)?.flatten_all()?;
        let vocab = self.config.vocab_size;
        if let Some(bad) = flat
            .to_vec1::<u32>()?
            .into_iter()
            .find(|&id| id as usize >= vocab)
        {
            return Err(SdError::input(
                "ids",
                format!("token id {bad} is outside the {vocab}-row T5 embedding table"),
            ));
        }
        let mut x = self
            .shared
            .index_select(&flat, 0)?
            .reshape((b, l, self.config.d_model))?
            .to_dtype(DType::F32)?;
        let bias = self.position_bias(l, ids.device())?;
        for block in &self.blocks {
            x = block.forward(&x, &bias)?;
        }
        Ok(self.final_layer_norm.forward(&x)?)
    }

    /// `[1, heads, L, L]`: the first layer's bias for key `j` seen from query `i`.
    fn position_bias(&self, l: usize, device: &Device) -> candle_core::Result<Tensor> {
        let Some(table) = self
            .blocks
            .first()
            .and_then(|b| b.attention.relative_attention_bias.as_ref())
        else {
            candle_core::bail!("T5 encoder without a relative attention bias table")
        };
        let (buckets, distance) = (
            self.config.relative_attention_num_buckets,
            self.config.relative_attention_max_distance,
        );
        let ids: Vec<u32> = (0..l * l)
            .map(|k| {
                let relative = (k % l) as i64 - (k / l) as i64;
                relative_position_bucket(relative, buckets, distance) as u32
            })
            .collect();
        let ids = Tensor::from_vec(ids, l * l, device)?;
        table
            .index_select(&ids, 0)?
            .reshape((l, l, self.config.num_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }
}

#[derive(Debug, Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// The weights files of a T5 folder: the shards named by `model.safetensors.index.json`
/// (sorted), else the first of [`T5_WEIGHTS_FILES`] present.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, SdError> {
    let index_path = dir.join(T5_WEIGHTS_INDEX);
    if !index_path.is_file() {
        return Ok(vec![first_existing(dir, &T5_WEIGHTS_FILES)]);
    }
    let bytes = read_bytes(&index_path, "the T5 shard index")?;
    let index: ShardIndex =
        serde_json::from_slice(&bytes).map_err(|source| SdError::ConfigJson {
            path: index_path.clone(),
            what: "safetensors shard index",
            source,
        })?;
    let shards: BTreeSet<&String> = index.weight_map.values().collect();
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains(['/', '\\']) || s.as_str() == "..")
    {
        return Err(SdError::Safetensors {
            path: index_path,
            detail: format!("shard `{bad}` is not a file name in the folder"),
        });
    }
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::relative_position_bucket;

    #[test]
    fn buckets_follow_transformers() {
        // Exact for |d| < 8, logarithmic up to 128, the sign picks the half.
        let b = |d| relative_position_bucket(d, 32, 128);
        assert_eq!((b(0), b(-3), b(3)), (0, 3, 19));
        assert_eq!((b(-7), b(-8), b(-15), b(-16)), (7, 8, 9, 10));
        assert_eq!((b(-31), b(-32), b(-64), b(-127)), (11, 12, 14, 15));
        assert_eq!((b(-128), b(-1000), b(1000)), (15, 15, 31));
    }
}
