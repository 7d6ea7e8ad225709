//! The class-conditional pixel-space UNet: diffusers `UNet2DModel`, weights and numbers.
//!
//! Ports `UNet2DModel.__init__`/`forward` from diffusers
//! `src/diffusers/models/unets/unet_2d.py` (v0.42.1) for the options [`UNet2DConfig`]
//! validates; the golden test checks the output against diffusers on the `unet2d-tiny`
//! fixture. Weight names are diffusers' state-dict keys (`conv_in`, `time_embedding.linear_1`,
//! `class_embedding.weight`, `down_blocks.{i}.resnets.{j}.conv1`, ..., `conv_out`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::blocks::{
    BlockCommon, DownBlock, DownBlockSpec, MidBlock, MidBlockSpec, UpBlock, UpBlockSpec,
};
use super::config::{BlockKind, UNet2DConfig};
use super::embeddings::{SinusoidalTimeProj, TimestepEmbedding};
use super::error::UnetError;
use super::layers::{Conv2d, Embedding, GroupNorm};
use super::weights::{Recorder, SeededSource, TensorSource, WeightProblem};

/// The conditioning vector of a forward pass and its parts (for inspection and tests).
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// Sinusoidal timestep features, `[B, block_out_channels[0]]`.
    pub time_proj: Tensor,
    /// Time MLP output, `[B, T]`.
    pub time_embedding: Tensor,
    /// Class embedding rows, `[B, T]`, when class labels were given.
    pub class_embedding: Option<Tensor>,
    /// `time_embedding + class_embedding`, `[B, T]`: what the resnets receive.
    pub combined: Tensor,
}

/// diffusers `UNet2DModel` (class-conditional through `num_class_embeds`).
#[derive(Debug, Clone)]
pub struct UNet2DModel {
    config: UNet2DConfig,
    time_proj: SinusoidalTimeProj,
    time_embedding: TimestepEmbedding,
    class_embedding: Option<Embedding>,
    conv_in: Conv2d,
    down_blocks: Vec<DownBlock>,
    mid_block: Option<MidBlock>,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    /// Every parameter by its diffusers name (for saving and counting).
    weights: BTreeMap<String, Tensor>,
    /// sha256 (hex) of the safetensors file this model was loaded from or last saved to.
    pub(crate) weights_sha256: Option<String>,
    device: Device,
    /// The weights' dtype: f32, or f16 / bf16 for a pretrained model loaded for a GPU.
    dtype: DType,
}

impl UNet2DModel {
    /// A model with the given weights (diffusers names; f32, f16 or bf16, kept as f32).
    /// Every weight the config needs must be present with the right shape, and no other.
    pub fn from_tensors(
        config: &UNet2DConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, UnetError> {
        Self::from_tensors_named(config, tensors, device, DType::F32, "<in-memory weights>")
    }

    /// [`Self::from_tensors`] with the weights converted to `dtype` (f32, f16 or bf16).
    pub(crate) fn from_tensors_named(
        config: &UNet2DConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
        origin: &str,
    ) -> Result<Self, UnetError> {
        config.validate()?;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(UnetError::input(
                "dtype",
                format!("{dtype:?}; a model computes in F32, F16 or BF16"),
            ));
        }
        let mut converted = HashMap::with_capacity(tensors.len());
        for (name, tensor) in tensors {
            if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
                return Err(UnetError::WeightDtype {
                    origin: origin.into(),
                    dtype: format!("{:?}", tensor.dtype()),
                    name,
                });
            }
            converted.insert(name, tensor.to_dtype(dtype)?);
        }
        let names: Vec<String> = converted.keys().cloned().collect();
        let (vb, recorder) = TensorSource::builder(converted, device, dtype);
        let model = Self::build_recorded(config, vb, &recorder, device, origin)?;
        let mut unused: Vec<String> = names
            .into_iter()
            .filter(|n| !model.weights.contains_key(n))
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(UnetError::UnexpectedWeights {
                origin: origin.into(),
                names: unused,
            });
        }
        Ok(model)
    }

    /// A trainable model whose parameters are `Var`s in `varmap` (names = diffusers keys).
    /// Parameters not yet in the map are initialised as PyTorch would (kaiming-uniform with
    /// `a = sqrt 5` for conv/linear weights, `U(+-1/sqrt(fan_in))` biases, `N(0, 1)` class
    /// embedding, ones/zeros for norms), drawn from `semaug_core::seeds::Stream` keyed by
    /// `(seed, name)`: the same seed gives identical weights. Parameters already in the map
    /// (e.g. after `VarMap::load`) are used as they are.
    pub fn trainable(
        config: &UNet2DConfig,
        varmap: &VarMap,
        seed: u64,
        device: &Device,
    ) -> Result<Self, UnetError> {
        config.validate()?;
        let (vb, recorder) = SeededSource::builder(varmap, seed, device);
        Self::build_recorded(config, vb, &recorder, device, "<VarMap>")
    }

    fn build_recorded(
        config: &UNet2DConfig,
        vb: VarBuilder,
        recorder: &Arc<Recorder>,
        device: &Device,
        origin: &str,
    ) -> Result<Self, UnetError> {
        match Self::build(config, vb, device) {
            Ok(mut model) => {
                model.weights = recorder.taken();
                Ok(model)
            }
            Err(err) => Err(match recorder.problem() {
                Some(WeightProblem::Missing { name, shape }) => UnetError::MissingWeight {
                    origin: origin.into(),
                    name,
                    shape,
                },
                Some(WeightProblem::Shape {
                    name,
                    expected,
                    found,
                }) => UnetError::WeightShape {
                    origin: origin.into(),
                    name,
                    expected,
                    found,
                },
                None => err.into(),
            }),
        }
    }

    /// Builds every layer from `vb` (a validated config).
    fn build(config: &UNet2DConfig, vb: VarBuilder, device: &Device) -> candle_core::Result<Self> {
        let ch = &config.block_out_channels;
        let temb = config.time_embed_dim();
        let common = BlockCommon {
            temb_channels: temb,
            groups: config.norm_num_groups,
            eps: config.norm_eps,
        };
        let time_proj =
            SinusoidalTimeProj::new(ch[0], config.flip_sin_to_cos, config.freq_shift, device)?;
        let class_embedding = match config.num_class_embeds {
            Some(rows) => Some(Embedding::new(rows, temb, vb.pp("class_embedding"))?),
            None => None,
        };
        Ok(Self {
            time_proj,
            time_embedding: TimestepEmbedding::new(ch[0], temb, vb.pp("time_embedding"))?,
            class_embedding,
            conv_in: Conv2d::new(config.in_channels, ch[0], 3, 1, 1, vb.pp("conv_in"))?,
            down_blocks: Self::build_down(config, &common, &vb)?,
            mid_block: Self::build_mid(config, &common, &vb)?,
            up_blocks: Self::build_up(config, &common, &vb)?,
            conv_norm_out: GroupNorm::new(
                config.norm_num_groups,
                ch[0],
                config.norm_eps,
                vb.pp("conv_norm_out"),
            )?,
            conv_out: Conv2d::new(ch[0], config.out_channels, 3, 1, 1, vb.pp("conv_out"))?,
            config: config.clone(),
            weights: BTreeMap::new(),
            weights_sha256: None,
            device: device.clone(),
            dtype: vb.dtype(),
        })
    }

    fn build_down(
        config: &UNet2DConfig,
        common: &BlockCommon,
        vb: &VarBuilder,
    ) -> candle_core::Result<Vec<DownBlock>> {
        let ch = &config.block_out_channels;
        let kinds = config
            .down_block_kinds()
            .map_err(candle_core::Error::wrap)?;
        let mut blocks = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            let spec = DownBlockSpec {
                in_channels: if i == 0 { ch[0] } else { ch[i - 1] },
                out_channels: ch[i],
                layers: config.layers_per_block,
                attention_head_dim: (*kind == BlockKind::Attention).then(|| config.head_dim(ch[i])),
                add_downsample: i + 1 < ch.len(),
                downsample_padding: config.downsample_padding,
            };
            blocks.push(DownBlock::new(&spec, common, vb.pp("down_blocks").pp(i))?);
        }
        Ok(blocks)
    }

    fn build_mid(
        config: &UNet2DConfig,
        common: &BlockCommon,
        vb: &VarBuilder,
    ) -> candle_core::Result<Option<MidBlock>> {
        if !config.has_mid_block() {
            return Ok(None);
        }
        let c = config.block_out_channels[config.levels() - 1];
        let spec = MidBlockSpec {
            channels: c,
            attention_head_dim: config.add_attention.then(|| config.head_dim(c)),
            attention_groups: config.mid_attention_groups(),
            output_scale_factor: config.mid_block_scale_factor,
        };
        Ok(Some(MidBlock::new(&spec, common, vb.pp("mid_block"))?))
    }

    fn build_up(
        config: &UNet2DConfig,
        common: &BlockCommon,
        vb: &VarBuilder,
    ) -> candle_core::Result<Vec<UpBlock>> {
        let reversed: Vec<usize> = config.block_out_channels.iter().rev().copied().collect();
        let kinds = config.up_block_kinds().map_err(candle_core::Error::wrap)?;
        let mut blocks = Vec::with_capacity(kinds.len());
        let mut prev = reversed[0];
        for (i, kind) in kinds.iter().enumerate() {
            let out = reversed[i];
            let spec = UpBlockSpec {
                in_channels: reversed[(i + 1).min(reversed.len() - 1)],
                prev_output_channels: prev,
                out_channels: out,
                layers: config.layers_per_block + 1,
                attention_head_dim: (*kind == BlockKind::Attention).then(|| config.head_dim(out)),
                add_upsample: i + 1 < reversed.len(),
            };
            blocks.push(UpBlock::new(&spec, common, vb.pp("up_blocks").pp(i))?);
            prev = out;
        }
        Ok(blocks)
    }
}

/// Forward pass.
impl UNet2DModel {
    /// The model output (noise, velocity, ... whatever it was trained to predict).
    ///
    /// * `sample`: `[B, in_channels, H, W]` f32 (f16 / bf16 accepted), `H` and `W`
    ///   multiples of [`UNet2DConfig::downsample_factor`]; cast to the weights' dtype.
    /// * `timesteps`: float, `[B]` (one per sample), `[1]` or a scalar (broadcast). Used as
    ///   given (diffusers truncates a Python-number timestep to an integer; pass whole
    ///   numbers to reproduce that).
    /// * `class_labels`: `[B]` integer ids (u8, u32 or i64) in `0..num_class_embeds`; the null
    ///   class is the last row. Required by a class-conditional model, and must be `None` for
    ///   an unconditional one (as in diffusers).
    ///
    /// Returns `[B, out_channels, H, W]` in the weights' dtype ([`Self::dtype`]).
    pub fn forward(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        class_labels: Option<&Tensor>,
    ) -> Result<Tensor, UnetError> {
        let batch = self.check_sample(sample)?;
        let cond = self.conditioning(timesteps, class_labels, batch)?;
        self.forward_with_embedding(sample, &cond.combined)
    }

    /// The conditioning of a batch of `batch` samples: time features, time MLP, class rows
    /// and their sum `[B, T]`.
    pub fn conditioning(
        &self,
        timesteps: &Tensor,
        class_labels: Option<&Tensor>,
        batch: usize,
    ) -> Result<Conditioning, UnetError> {
        let t = self.broadcast_timesteps(timesteps, batch)?;
        let time_proj = self.time_proj.forward(&t)?;
        let time_embedding = self
            .time_embedding
            .forward(&time_proj.to_dtype(self.dtype)?)?;
        let class_embedding = match (&self.class_embedding, class_labels) {
            (Some(table), Some(labels)) => {
                self.check_labels(labels, batch)?;
                Some(table.forward(labels)?)
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(UnetError::input(
                    "class_labels",
                    "this model is class-conditional: give one label per sample (the null \
                     class is the last row of the class embedding)",
                ))
            }
            (None, Some(_)) => {
                return Err(UnetError::input(
                    "class_labels",
                    "this model has no class embedding (num_class_embeds is null): pass none",
                ))
            }
        };
        let combined = match &class_embedding {
            Some(c) => (&time_embedding + c)?,
            None => time_embedding.clone(),
        };
        Ok(Conditioning {
            time_proj,
            time_embedding,
            class_embedding,
            combined,
        })
    }

    /// The time part of the conditioning, `[B, T]`: what [`Self::forward_with_embedding`]
    /// needs besides a class row (e.g. a learned concept row) added to it.
    pub fn time_embedding(&self, timesteps: &Tensor, batch: usize) -> Result<Tensor, UnetError> {
        let t = self.broadcast_timesteps(timesteps, batch)?;
        let features = self.time_proj.forward(&t)?.to_dtype(self.dtype)?;
        Ok(self.time_embedding.forward(&features)?)
    }

    /// The network given the conditioning vector directly: `sample [B, C_in, H, W]`,
    /// `embedding [B, T]` (see [`Self::conditioning`]; e.g. a time embedding plus a learned,
    /// not-yet-tabled class row) `-> [B, C_out, H, W]`.
    pub fn forward_with_embedding(
        &self,
        sample: &Tensor,
        embedding: &Tensor,
    ) -> Result<Tensor, UnetError> {
        let batch = self.check_sample(sample)?;
        let temb = self.config.time_embed_dim();
        if embedding.dims() != [batch, temb] {
            return Err(UnetError::input(
                "embedding",
                format!("shape {:?}, expected [{batch}, {temb}]", embedding.dims()),
            ));
        }
        let sample = sample.to_dtype(self.dtype)?;
        let x = if self.config.center_input_sample {
            sample.affine(2.0, -1.0)?
        } else {
            sample
        };
        // silu(temb) is the same in every resnet: compute it once.
        let temb_act = embedding.to_dtype(self.dtype)?.silu()?;
        let mut h = self.conv_in.forward(&x)?;
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            let (out, block_skips) = block.forward(&h, &temb_act)?;
            h = out;
            skips.extend(block_skips);
        }
        if let Some(mid) = &self.mid_block {
            h = mid.forward(&h, &temb_act)?;
        }
        for block in &self.up_blocks {
            h = block.forward(&h, &mut skips, &temb_act)?;
        }
        let h = self.conv_norm_out.forward_silu(&h)?;
        Ok(self.conv_out.forward(&h)?)
    }

    /// Checks `sample` and returns its batch size.
    fn check_sample(&self, sample: &Tensor) -> Result<usize, UnetError> {
        let dims = sample.dims();
        let factor = self.config.downsample_factor();
        let ok = dims.len() == 4
            && dims[0] > 0
            && dims[1] == self.config.in_channels
            && dims[2] > 0
            && dims[3] > 0
            && dims[2] % factor == 0
            && dims[3] % factor == 0;
        if !ok {
            return Err(UnetError::input(
                "sample",
                format!(
                    "shape {dims:?}; expected [B, {}, H, W] with B > 0 and H, W positive \
                     multiples of {factor}",
                    self.config.in_channels
                ),
            ));
        }
        if !matches!(sample.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(UnetError::input(
                "sample",
                format!(
                    "dtype {:?}; expected F32, F16 or BF16 (computed in the weights' {:?})",
                    sample.dtype(),
                    self.dtype
                ),
            ));
        }
        Ok(dims[0])
    }

    /// `timesteps` as `[batch]` f32.
    fn broadcast_timesteps(&self, timesteps: &Tensor, batch: usize) -> Result<Tensor, UnetError> {
        if !timesteps.dtype().is_float() {
            return Err(UnetError::input(
                "timesteps",
                format!("dtype {:?}; expected a float tensor", timesteps.dtype()),
            ));
        }
        let t = timesteps.to_dtype(DType::F32)?;
        match t.dims() {
            [] => Ok(t.reshape(1)?.broadcast_as(batch)?.contiguous()?),
            [1] => Ok(t.broadcast_as(batch)?.contiguous()?),
            [n] if *n == batch => Ok(t),
            other => Err(UnetError::input(
                "timesteps",
                format!("shape {other:?}; expected a scalar, [1] or [{batch}]"),
            )),
        }
    }

    fn check_labels(&self, labels: &Tensor, batch: usize) -> Result<(), UnetError> {
        let rows = self.config.num_class_embeds.unwrap_or(0);
        if !matches!(labels.dtype(), DType::U8 | DType::U32 | DType::I64) {
            return Err(UnetError::input(
                "class_labels",
                format!("dtype {:?}; expected U8, U32 or I64", labels.dtype()),
            ));
        }
        if labels.dims() != [batch] {
            return Err(UnetError::input(
                "class_labels",
                format!("shape {:?}; expected [{batch}]", labels.dims()),
            ));
        }
        let values = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        if let Some(bad) = values.iter().find(|v| **v < 0 || **v >= rows as i64) {
            return Err(UnetError::input(
                "class_labels",
                format!(
                    "label {bad} is outside 0..{rows} (the null class is {})",
                    rows - 1
                ),
            ));
        }
        Ok(())
    }
}

/// Accessors.
impl UNet2DModel {
    pub fn config(&self) -> &UNet2DConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weights' dtype, in which the network computes (norms and softmax in f32).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Every parameter by its diffusers state-dict name.
    pub fn weights(&self) -> &BTreeMap<String, Tensor> {
        &self.weights
    }

    /// Total number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.weights.values().map(|t| t.elem_count()).sum()
    }

    /// The class embedding table `[num_class_embeds, T]` (null class = last row).
    pub fn class_embedding_table(&self) -> Option<&Tensor> {
        self.class_embedding.as_ref().map(|e| e.weight())
    }

    /// The null (unconditional) class id: the last row of the class embedding.
    pub fn null_class(&self) -> Option<usize> {
        self.config.null_class()
    }

    /// sha256 (hex) of the safetensors file this model was loaded from or last saved to.
    pub fn weights_sha256(&self) -> Option<&str> {
        self.weights_sha256.as_deref()
    }
}
