//! The `config.json` of a diffusers `UNet2DModel`, field for field, with diffusers' defaults,
//! the project's presets and validation.
//!
//! Mirrors `UNet2DModel.__init__` in diffusers `src/diffusers/models/unets/unet_2d.py`
//! (v0.42.1). Every key diffusers writes is a field here, so a config read from a diffusers
//! directory is written back with the same keys; keys this struct does not know are kept in
//! [`UNet2DConfig::extra`] and written back unchanged.
//!
//! Only the options the embedded model implements are accepted by [`UNet2DConfig::validate`];
//! anything else (a "fourier" time embedding, "scale_shift" resnets, skip blocks, ...) is a
//! [`ConfigError`] naming the field and the supported values, never silently wrong numbers.
//!
//! **Class conditioning.** With `class_embed_type = null` and `num_class_embeds = n`, the class
//! embedding is an `nn.Embedding(n, time_embed_dim)`. By project convention the **last row,
//! index `n - 1`, is the null class** used for classifier-free guidance (the presets use
//! `n = 11`: classes 0..=9 and the null row 10). See [`UNet2DConfig::null_class`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The diffusers version whose numbers the golden tests check; written into new configs.
pub const DIFFUSERS_VERSION: &str = "0.42.1";
/// The only `_class_name` this config describes.
pub const CLASS_NAME: &str = "UNet2DModel";

/// A config value the embedded UNet does not support, or an inconsistent combination.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("UNet2DModel config field `{field}` is {found}; expected {expected}")]
pub struct ConfigError {
    /// The config.json key (with an index for list entries, e.g. `down_block_types[1]`).
    pub field: String,
    /// The offending value, as it would appear in JSON.
    pub found: String,
    /// What is accepted.
    pub expected: String,
}

impl ConfigError {
    fn new(
        field: impl Into<String>,
        found: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            found: found.into(),
            expected: expected.into(),
        }
    }
}

/// `sample_size`: an int, or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SampleSize {
    Square(usize),
    Rect([usize; 2]),
}

impl SampleSize {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Self::Square(s) => (s, s),
            Self::Rect([h, w]) => (h, w),
        }
    }
}

/// Whether a down/up block has attention after each resnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `DownBlock2D` / `UpBlock2D`.
    Plain,
    /// `AttnDownBlock2D` / `AttnUpBlock2D`.
    Attention,
}

/// diffusers `UNet2DModel` config. Field names are the config.json keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNet2DConfig {
    #[serde(rename = "_class_name", default = "default_class_name")]
    pub class_name: String,
    #[serde(rename = "_diffusers_version", default = "default_diffusers_version")]
    pub diffusers_version: String,
    #[serde(default)]
    pub sample_size: Option<SampleSize>,
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    /// When true the input is mapped `x -> 2x - 1` first.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Only "positional" (sinusoidal) is supported.
    #[serde(default = "default_time_embedding_type")]
    pub time_embedding_type: String,
    /// Width of the time MLP; `null` means `4 * block_out_channels[0]`.
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    /// `downscale_freq_shift` of the sinusoid.
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default = "default_down_block_types")]
    pub down_block_types: Vec<String>,
    /// "UNetMidBlock2D" or `null` (no mid block).
    #[serde(default = "default_mid_block_type")]
    pub mid_block_type: Option<String>,
    #[serde(default = "default_up_block_types")]
    pub up_block_types: Vec<String>,
    #[serde(default = "default_block_out_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    /// Output scale of the mid block's resnets and attention.
    #[serde(default = "one_f64")]
    pub mid_block_scale_factor: f64,
    /// 1: symmetric padding of the stride-2 conv; 0: pad right/bottom by one first.
    #[serde(default = "one")]
    pub downsample_padding: usize,
    #[serde(default = "conv")]
    pub downsample_type: String,
    #[serde(default = "conv")]
    pub upsample_type: String,
    /// Dropout probability in the resnets. The embedded model never applies dropout (it is
    /// the identity at inference); values are kept for round trips.
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "silu")]
    pub act_fn: String,
    /// Size of one attention head; `null` means one head over all channels.
    #[serde(default = "default_attention_head_dim")]
    pub attention_head_dim: Option<usize>,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Groups of the mid block attention's norm; `null` means `norm_num_groups`.
    #[serde(default)]
    pub attn_norm_num_groups: Option<usize>,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// Only "default" (time embedding added to the features) is supported.
    #[serde(default = "default_time_scale_shift")]
    pub resnet_time_scale_shift: String,
    /// Attention in the mid block.
    #[serde(default = "yes")]
    pub add_attention: bool,
    /// Only `null` is supported (with `num_class_embeds`: a learned embedding table).
    #[serde(default)]
    pub class_embed_type: Option<String>,
    /// Rows of the class embedding table, the null class included (the last row).
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    /// Only used by "learned" time embeddings in diffusers; kept for round trips.
    #[serde(default)]
    pub num_train_timesteps: Option<usize>,
    /// Keys this struct does not model, kept verbatim for round trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_class_name() -> String {
    CLASS_NAME.into()
}
fn default_diffusers_version() -> String {
    DIFFUSERS_VERSION.into()
}
fn default_time_embedding_type() -> String {
    "positional".into()
}
fn default_time_scale_shift() -> String {
    "default".into()
}
fn default_mid_block_type() -> Option<String> {
    Some(MID_BLOCK.into())
}
fn default_attention_head_dim() -> Option<usize> {
    Some(8)
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_block_out_channels() -> Vec<usize> {
    vec![224, 448, 672, 896]
}
fn default_down_block_types() -> Vec<String> {
    strings(&[DOWN, ATTN_DOWN, ATTN_DOWN, ATTN_DOWN])
}
fn default_up_block_types() -> Vec<String> {
    strings(&[ATTN_UP, ATTN_UP, ATTN_UP, UP])
}
fn conv() -> String {
    "conv".into()
}
fn silu() -> String {
    "silu".into()
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn thirty_two() -> usize {
    32
}
fn one_f64() -> f64 {
    1.0
}

const DOWN: &str = "DownBlock2D";
const ATTN_DOWN: &str = "AttnDownBlock2D";
const UP: &str = "UpBlock2D";
const ATTN_UP: &str = "AttnUpBlock2D";
const MID_BLOCK: &str = "UNetMidBlock2D";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for UNet2DConfig {
    /// diffusers' defaults (`UNet2DModel()` with no arguments).
    fn default() -> Self {
        Self {
            class_name: default_class_name(),
            diffusers_version: default_diffusers_version(),
            sample_size: None,
            in_channels: 3,
            out_channels: 3,
            center_input_sample: false,
            time_embedding_type: default_time_embedding_type(),
            time_embedding_dim: None,
            freq_shift: 0.0,
            flip_sin_to_cos: true,
            down_block_types: default_down_block_types(),
            mid_block_type: default_mid_block_type(),
            up_block_types: default_up_block_types(),
            block_out_channels: default_block_out_channels(),
            layers_per_block: 2,
            mid_block_scale_factor: 1.0,
            downsample_padding: 1,
            downsample_type: conv(),
            upsample_type: conv(),
            dropout: 0.0,
            act_fn: silu(),
            attention_head_dim: default_attention_head_dim(),
            norm_num_groups: 32,
            attn_norm_num_groups: None,
            norm_eps: default_norm_eps(),
            resnet_time_scale_shift: default_time_scale_shift(),
            add_attention: true,
            class_embed_type: None,
            num_class_embeds: None,
            num_train_timesteps: None,
            extra: BTreeMap::new(),
        }
    }
}

/// Presets: the project's class-conditional pixel-space models (10 classes + the null row).
impl UNet2DConfig {
    /// Tiny model for tests; the same architecture as the `unet2d-tiny` golden fixture:
    /// channels (32, 64, 64), one resnet per level, attention at the middle level and in the
    /// mid block, 8 norm groups, head size 8.
    pub fn test() -> Self {
        Self {
            sample_size: Some(SampleSize::Square(32)),
            block_out_channels: vec![32, 64, 64],
            layers_per_block: 1,
            down_block_types: strings(&[DOWN, ATTN_DOWN, DOWN]),
            up_block_types: strings(&[UP, ATTN_UP, UP]),
            norm_num_groups: 8,
            attention_head_dim: Some(8),
            num_class_embeds: Some(11),
            ..Self::default()
        }
    }

    /// **The default model**: 32x32 RGB, channels (64, 128, 128), one resnet per level, no
    /// attention in the down/up blocks, mid-block attention at 8x8, 32 norm groups, head size 32.
    pub fn small() -> Self {
        Self {
            sample_size: Some(SampleSize::Square(32)),
            block_out_channels: vec![64, 128, 128],
            layers_per_block: 1,
            down_block_types: strings(&[DOWN, DOWN, DOWN]),
            up_block_types: strings(&[UP, UP, UP]),
            add_attention: true,
            norm_num_groups: 32,
            attention_head_dim: Some(32),
            num_class_embeds: Some(11),
            ..Self::default()
        }
    }

    /// Larger model: channels (128, 256, 256), two resnets per level, attention at 16x16 and
    /// in the mid block, head size 32.
    pub fn base() -> Self {
        Self {
            sample_size: Some(SampleSize::Square(32)),
            block_out_channels: vec![128, 256, 256],
            layers_per_block: 2,
            down_block_types: strings(&[DOWN, ATTN_DOWN, DOWN]),
            up_block_types: strings(&[UP, ATTN_UP, UP]),
            add_attention: true,
            norm_num_groups: 32,
            attention_head_dim: Some(32),
            num_class_embeds: Some(11),
            ..Self::default()
        }
    }

    /// A preset by name: "test", "small" or "base".
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        match name {
            "test" => Ok(Self::test()),
            "small" => Ok(Self::small()),
            "base" => Ok(Self::base()),
            other => Err(ConfigError::new(
                "preset",
                format!("{other:?}"),
                "one of \"test\", \"small\", \"base\"",
            )),
        }
    }
}

/// Derived quantities (valid after [`UNet2DConfig::validate`]).
impl UNet2DConfig {
    /// Number of resolution levels.
    pub fn levels(&self) -> usize {
        self.block_out_channels.len()
    }

    /// Width of the time (and class) embedding.
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim
            .unwrap_or(4 * self.block_out_channels.first().copied().unwrap_or(0))
    }

    /// Height and width must be multiples of this.
    pub fn downsample_factor(&self) -> usize {
        1 << self.levels().saturating_sub(1)
    }

    /// The null (unconditional) class: the last row of the class embedding.
    pub fn null_class(&self) -> Option<usize> {
        self.num_class_embeds.and_then(|n| n.checked_sub(1))
    }

    /// Head size for attention over `channels` channels.
    pub fn head_dim(&self, channels: usize) -> usize {
        self.attention_head_dim.unwrap_or(channels)
    }

    /// Group count of the mid-block attention norm.
    pub fn mid_attention_groups(&self) -> usize {
        self.attn_norm_num_groups.unwrap_or(self.norm_num_groups)
    }

    pub fn has_mid_block(&self) -> bool {
        self.mid_block_type.is_some()
    }

    pub fn down_block_kinds(&self) -> Result<Vec<BlockKind>, ConfigError> {
        block_kinds("down_block_types", &self.down_block_types, DOWN, ATTN_DOWN)
    }

    pub fn up_block_kinds(&self) -> Result<Vec<BlockKind>, ConfigError> {
        block_kinds("up_block_types", &self.up_block_types, UP, ATTN_UP)
    }
}

fn block_kinds(
    field: &str,
    names: &[String],
    plain: &str,
    attention: &str,
) -> Result<Vec<BlockKind>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| match name.as_str() {
            n if n == plain => Ok(BlockKind::Plain),
            n if n == attention => Ok(BlockKind::Attention),
            other => Err(ConfigError::new(
                format!("{field}[{i}]"),
                format!("{other:?}"),
                format!("{plain:?} or {attention:?}"),
            )),
        })
        .collect()
}

fn expect_str(field: &str, found: &str, valid: &[&str]) -> Result<(), ConfigError> {
    if valid.contains(&found) {
        return Ok(());
    }
    let list: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
    Err(ConfigError::new(
        field,
        format!("{found:?}"),
        format!("one of {} (the only values implemented)", list.join(", ")),
    ))
}

fn positive(field: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(field, "0", "a positive integer"));
    }
    Ok(())
}

impl UNet2DConfig {
    /// Checks that the embedded UNet implements exactly what this config describes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_options()?;
        self.validate_shapes()?;
        self.validate_norms()?;
        self.validate_attention()?;
        self.validate_embeddings()
    }

    fn validate_options(&self) -> Result<(), ConfigError> {
        expect_str("_class_name", &self.class_name, &[CLASS_NAME])?;
        expect_str(
            "time_embedding_type",
            &self.time_embedding_type,
            &["positional"],
        )?;
        expect_str(
            "resnet_time_scale_shift",
            &self.resnet_time_scale_shift,
            &["default"],
        )?;
        expect_str("act_fn", &self.act_fn, &["silu", "swish"])?;
        expect_str("downsample_type", &self.downsample_type, &["conv"])?;
        expect_str("upsample_type", &self.upsample_type, &["conv"])?;
        if let Some(kind) = &self.mid_block_type {
            expect_str("mid_block_type", kind, &[MID_BLOCK])?;
        }
        if let Some(kind) = &self.class_embed_type {
            return Err(ConfigError::new(
                "class_embed_type",
                format!("{kind:?}"),
                "null (a learned table of `num_class_embeds` rows)",
            ));
        }
        if self.downsample_padding > 1 {
            return Err(ConfigError::new(
                "downsample_padding",
                self.downsample_padding.to_string(),
                "0 or 1",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::new(
                "dropout",
                self.dropout.to_string(),
                "a probability in [0, 1)",
            ));
        }
        if !(self.mid_block_scale_factor.is_finite() && self.mid_block_scale_factor > 0.0) {
            return Err(ConfigError::new(
                "mid_block_scale_factor",
                self.mid_block_scale_factor.to_string(),
                "a positive number",
            ));
        }
        Ok(())
    }

    fn validate_shapes(&self) -> Result<(), ConfigError> {
        positive("in_channels", self.in_channels)?;
        positive("out_channels", self.out_channels)?;
        positive("layers_per_block", self.layers_per_block)?;
        if self.block_out_channels.is_empty() {
            return Err(ConfigError::new(
                "block_out_channels",
                "[]",
                "at least one level",
            ));
        }
        for (i, c) in self.block_out_channels.iter().enumerate() {
            positive(&format!("block_out_channels[{i}]"), *c)?;
        }
        let levels = self.levels();
        for (field, len) in [
            ("down_block_types", self.down_block_types.len()),
            ("up_block_types", self.up_block_types.len()),
        ] {
            if len != levels {
                return Err(ConfigError::new(
                    field,
                    format!("a list of {len}"),
                    format!("one entry per block_out_channels entry ({levels})"),
                ));
            }
        }
        self.down_block_kinds()?;
        self.up_block_kinds()?;
        if let Some(size) = self.sample_size {
            let (h, w) = size.hw();
            let f = self.downsample_factor();
            if h == 0 || w == 0 || h % f != 0 || w % f != 0 {
                return Err(ConfigError::new(
                    "sample_size",
                    format!("{h}x{w}"),
                    format!("positive multiples of {f} (2^(levels-1))"),
                ));
            }
        }
        Ok(())
    }

    fn validate_norms(&self) -> Result<(), ConfigError> {
        let groups = self.norm_num_groups;
        positive("norm_num_groups", groups)?;
        for (i, c) in self.block_out_channels.iter().enumerate() {
            if c % groups != 0 {
                return Err(ConfigError::new(
                    format!("block_out_channels[{i}]"),
                    c.to_string(),
                    format!("a multiple of norm_num_groups ({groups})"),
                ));
            }
        }
        if let Some(g) = self.attn_norm_num_groups {
            let c = self.block_out_channels[self.levels() - 1];
            if g == 0 || c % g != 0 {
                return Err(ConfigError::new(
                    "attn_norm_num_groups",
                    g.to_string(),
                    format!("a positive divisor of the last block's channels ({c})"),
                ));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(ConfigError::new(
                "norm_eps",
                self.norm_eps.to_string(),
                "a small positive number",
            ));
        }
        Ok(())
    }

    fn validate_attention(&self) -> Result<(), ConfigError> {
        let Some(head_dim) = self.attention_head_dim else {
            return Ok(());
        };
        let down = self.down_block_kinds()?;
        let up = self.up_block_kinds()?;
        let last = self.levels() - 1;
        let mut attended: Vec<usize> = Vec::new();
        for (i, kind) in down.iter().enumerate() {
            if *kind == BlockKind::Attention {
                attended.push(self.block_out_channels[i]);
            }
        }
        for (i, kind) in up.iter().enumerate() {
            if *kind == BlockKind::Attention {
                attended.push(self.block_out_channels[last - i]);
            }
        }
        if self.has_mid_block() && self.add_attention {
            attended.push(self.block_out_channels[last]);
        }
        // diffusers uses `channels // head_dim` heads; zero heads is an empty layer.
        if let Some(c) = attended.iter().find(|c| head_dim == 0 || **c < head_dim) {
            return Err(ConfigError::new(
                "attention_head_dim",
                head_dim.to_string(),
                format!("between 1 and the attended channel count ({c})"),
            ));
        }
        Ok(())
    }

    fn validate_embeddings(&self) -> Result<(), ConfigError> {
        let c0 = self.block_out_channels[0];
        if (c0 / 2) as f64 == self.freq_shift || !self.freq_shift.is_finite() {
            return Err(ConfigError::new(
                "freq_shift",
                self.freq_shift.to_string(),
                format!(
                    "a finite number other than block_out_channels[0] / 2 ({})",
                    c0 / 2
                ),
            ));
        }
        if c0 < 2 {
            return Err(ConfigError::new(
                "block_out_channels[0]",
                c0.to_string(),
                "at least 2 (the sinusoidal time embedding width)",
            ));
        }
        if let Some(d) = self.time_embedding_dim {
            positive("time_embedding_dim", d)?;
        }
        if let Some(n) = self.num_class_embeds {
            positive("num_class_embeds", n)?;
        }
        Ok(())
    }

    /// Parses config.json text (no validation).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// config.json text as diffusers writes it: sorted keys, two-space indent, trailing newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        // Sort explicitly: another crate may turn on serde_json's `preserve_order`.
        let value = serde_json::to_value(self)?;
        let sorted: BTreeMap<String, serde_json::Value> = match value {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let mut text = serde_json::to_string_pretty(&sorted)?;
        text.push('\n');
        Ok(text)
    }
}
