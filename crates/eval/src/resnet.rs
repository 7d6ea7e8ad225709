//! ResNets for small images: the configuration (with the three presets the experiments
//! use), the two residual blocks, and the network.
//!
//! - [`ResNetConfig::resnet20`]: He et al. (2016, "Deep Residual Learning", section 4.2)
//!   CIFAR ResNet-20: a 3x3 stem, 3 stages of 3 post-activation basic blocks at 16/32/64
//!   channels, **option-A shortcuts** (subsample + zero-pad channels, no parameters) as in
//!   the paper; 269,722 parameters for 10 classes.
//! - [`ResNetConfig::preact_resnet18`]: He et al. (2016, "Identity Mappings") pre-activation
//!   ResNet-18 for 32x32 inputs: 3x3 stem, 4 stages of 2 pre-activation blocks at
//!   64/128/256/512, **1x1 projection shortcuts** (no BatchNorm, on the pre-activated
//!   input), final BN + ReLU; 11,172,170 parameters for 10 classes (the common
//!   `kuangliu/pytorch-cifar` layout has 1,024 fewer: it leaves out the final BN).
//! - [`ResNetConfig::small_resnet`]: a ResNet-10 for 64-128 px inputs: a stride-2 3x3 stem,
//!   4 stages of 1 basic block at 32/64/128/256, projection shortcuts (1x1 conv + BN);
//!   1,228,970 parameters for 10 classes.
//!
//! Parameter names follow PyTorch's conventions (`conv1.weight`, `bn1.running_mean`,
//! `layer2.0.shortcut.0.weight`, `fc.bias`); stages are `layer1..layerK`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::batch_norm::{BatchNorm2d, Mode};
use crate::error::{ensure, EvalError};
use crate::init::ParamBuilder;
use crate::layers::{global_avg_pool, Conv2d, Linear, OptionAShortcut};

/// Which residual block the stages are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// `relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut x)`.
    Basic,
    /// `conv2(relu(bn2(conv1(relu(bn1 x))))) + shortcut`, no activation after the add.
    PreAct,
}

/// How a block whose shape changes joins its input to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortcutKind {
    /// Subsample and zero-pad channels (no parameters).
    OptionA,
    /// A 1x1 strided convolution (followed by BatchNorm in basic blocks).
    Projection,
}

/// A ResNet's shape. Stage `k` has `blocks[k]` blocks of `widths[k]` channels; every stage
/// after the first halves the resolution in its first block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    pub block: BlockKind,
    pub shortcut: ShortcutKind,
    pub widths: Vec<usize>,
    pub blocks: Vec<usize>,
    /// Stride of the stem convolution (1 for 32x32 inputs, 2 for 64-128 px).
    pub stem_stride: usize,
    pub in_channels: usize,
    pub num_classes: usize,
    /// Start each basic block's last BatchNorm scale at 0 (Goyal et al. 2017), so every
    /// residual block begins as the identity. No effect on pre-activation blocks.
    pub zero_init_residual: bool,
}

impl ResNetConfig {
    pub fn resnet20(num_classes: usize) -> Self {
        Self {
            block: BlockKind::Basic,
            shortcut: ShortcutKind::OptionA,
            widths: vec![16, 32, 64],
            blocks: vec![3, 3, 3],
            stem_stride: 1,
            in_channels: 3,
            num_classes,
            zero_init_residual: false,
        }
    }

    pub fn preact_resnet18(num_classes: usize) -> Self {
        Self {
            block: BlockKind::PreAct,
            shortcut: ShortcutKind::Projection,
            widths: vec![64, 128, 256, 512],
            blocks: vec![2, 2, 2, 2],
            stem_stride: 1,
            in_channels: 3,
            num_classes,
            zero_init_residual: false,
        }
    }

    pub fn small_resnet(num_classes: usize) -> Self {
        Self {
            block: BlockKind::Basic,
            shortcut: ShortcutKind::Projection,
            widths: vec![32, 64, 128, 256],
            blocks: vec![1, 1, 1, 1],
            stem_stride: 2,
            in_channels: 3,
            num_classes,
            zero_init_residual: false,
        }
    }

    /// The same network with every width scaled so the first stage has `first` channels
    /// (e.g. a narrow ResNet-20 for tests).
    pub fn with_first_width(mut self, first: usize) -> Self {
        let base = self.widths.first().copied().unwrap_or(1).max(1);
        self.widths = self
            .widths
            .iter()
            .map(|w| (w * first / base).max(1))
            .collect();
        self
    }

    pub fn validate(&self) -> std::result::Result<(), EvalError> {
        let stages = self.widths.len();
        ensure(
            stages > 0 && self.blocks.len() == stages,
            "resnet stages",
            format!("widths {:?}, blocks {:?}", self.widths, self.blocks),
            "one or more stages, as many block counts as widths",
        )?;
        ensure(
            self.widths.iter().all(|w| (1..=4096).contains(w)),
            "resnet widths",
            format!("{:?}", self.widths),
            "1..=4096 channels per stage",
        )?;
        ensure(
            self.blocks.iter().all(|b| (1..=64).contains(b)),
            "resnet blocks",
            format!("{:?}", self.blocks),
            "1..=64 blocks per stage",
        )?;
        let widening = self.widths.windows(2).all(|w| w[0] <= w[1]);
        ensure(
            self.shortcut != ShortcutKind::OptionA || widening,
            "resnet widths",
            format!("{:?}", self.widths),
            "non-decreasing widths with option-A shortcuts (they can only pad channels)",
        )?;
        ensure(
            (1..=4).contains(&self.stem_stride),
            "stem stride",
            self.stem_stride,
            "1..=4",
        )?;
        ensure(
            (1..=64).contains(&self.in_channels),
            "input channels",
            self.in_channels,
            "1..=64",
        )?;
        ensure(
            (2..=100_000).contains(&self.num_classes),
            "number of classes",
            self.num_classes,
            "2..=100000",
        )
    }
}

/// The join of a block whose input and output shapes differ (or the identity).
#[derive(Debug, Clone)]
enum Shortcut {
    Identity,
    OptionA(OptionAShortcut),
    Projection(Conv2d, Option<BatchNorm2d>),
}

impl Shortcut {
    fn new(
        pb: &ParamBuilder,
        c: &ResNetConfig,
        c_in: usize,
        c_out: usize,
        stride: usize,
    ) -> Result<Self> {
        if c_in == c_out && stride == 1 {
            return Ok(Self::Identity);
        }
        let pb = pb.pp("shortcut");
        Ok(match (c.shortcut, c.block) {
            (ShortcutKind::OptionA, _) => {
                Self::OptionA(OptionAShortcut::new(&pb, c_in, c_out, stride)?)
            }
            (ShortcutKind::Projection, BlockKind::Basic) => Self::Projection(
                Conv2d::new(&pb.pp(0), c_in, c_out, 1, stride, 0)?,
                Some(BatchNorm2d::new(&pb.pp(1), c_out, 1.0)?),
            ),
            (ShortcutKind::Projection, BlockKind::PreAct) => {
                Self::Projection(Conv2d::new(&pb.pp(0), c_in, c_out, 1, stride, 0)?, None)
            }
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self {
            Self::Identity => Ok(x.clone()),
            Self::OptionA(s) => s.forward(x),
            Self::Projection(conv, None) => conv.forward(x),
            Self::Projection(conv, Some(bn)) => bn.forward(&conv.forward(x)?, mode),
        }
    }
}

/// One residual block (either kind).
#[derive(Debug, Clone)]
struct Block {
    kind: BlockKind,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    shortcut: Shortcut,
}

impl Block {
    fn new(
        pb: &ParamBuilder,
        c: &ResNetConfig,
        c_in: usize,
        c_out: usize,
        stride: usize,
    ) -> Result<Self> {
        let (bn1_width, last_gamma) = match c.block {
            BlockKind::Basic => (c_out, if c.zero_init_residual { 0.0 } else { 1.0 }),
            BlockKind::PreAct => (c_in, 1.0),
        };
        Ok(Self {
            kind: c.block,
            conv1: Conv2d::new(&pb.pp("conv1"), c_in, c_out, 3, stride, 1)?,
            bn1: BatchNorm2d::new(&pb.pp("bn1"), bn1_width, 1.0)?,
            conv2: Conv2d::new(&pb.pp("conv2"), c_out, c_out, 3, 1, 1)?,
            bn2: BatchNorm2d::new(&pb.pp("bn2"), c_out, last_gamma)?,
            shortcut: Shortcut::new(pb, c, c_in, c_out, stride)?,
        })
    }

    /// `[N, c_in, H, W]` -> `[N, c_out, H / stride, W / stride]`.
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match self.kind {
            BlockKind::Basic => {
                let h = self.bn1.forward_relu(&self.conv1.forward(x)?, mode)?;
                let skip = self.shortcut.forward(x, mode)?;
                self.bn2
                    .forward_add_relu(&self.conv2.forward(&h)?, &skip, mode)
            }
            BlockKind::PreAct => {
                let pre = self.bn1.forward_relu(x, mode)?;
                // The projection sees the pre-activated input; the identity sees x itself.
                let skip = match &self.shortcut {
                    Shortcut::Identity => x.clone(),
                    shortcut => shortcut.forward(&pre, mode)?,
                };
                let h = self.bn2.forward_relu(&self.conv1.forward(&pre)?, mode)?;
                self.conv2.forward(&h)? + skip
            }
        }
    }
}

/// A ResNet classifier.
#[derive(Debug, Clone)]
pub struct ResNet {
    pub config: ResNetConfig,
    stem: Conv2d,
    /// BN + ReLU after the stem (basic blocks) or before the pooling (pre-activation).
    stem_bn: Option<BatchNorm2d>,
    final_bn: Option<BatchNorm2d>,
    stages: Vec<Vec<Block>>,
    fc: Linear,
}

impl ResNet {
    /// Builds every parameter through `pb`; the config must be valid.
    pub fn new(config: &ResNetConfig, pb: &ParamBuilder) -> Result<Self> {
        let c = config;
        let first = c.widths[0];
        let stem = Conv2d::new(&pb.pp("conv1"), c.in_channels, first, 3, c.stem_stride, 1)?;
        let (stem_bn, final_bn) = match c.block {
            BlockKind::Basic => (Some(BatchNorm2d::new(&pb.pp("bn1"), first, 1.0)?), None),
            BlockKind::PreAct => {
                let last = *c.widths.last().unwrap_or(&first);
                (None, Some(BatchNorm2d::new(&pb.pp("bn"), last, 1.0)?))
            }
        };
        let mut stages = Vec::with_capacity(c.widths.len());
        let mut c_in = first;
        for (k, (&width, &count)) in c.widths.iter().zip(&c.blocks).enumerate() {
            let stage_pb = pb.pp(format!("layer{}", k + 1));
            let blocks = (0..count)
                .map(|i| {
                    let stride = if k > 0 && i == 0 { 2 } else { 1 };
                    let input = if i == 0 { c_in } else { width };
                    Block::new(&stage_pb.pp(i), c, input, width, stride)
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(blocks);
            c_in = width;
        }
        Ok(Self {
            config: config.clone(),
            stem,
            stem_bn,
            final_bn,
            stages,
            fc: Linear::new(&pb.pp("fc"), c_in, c.num_classes)?,
        })
    }

    /// Pooled features: `[N, in_channels, H, W]` -> `[N, widths.last()]`.
    pub fn features(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut h = self.stem.forward(x)?;
        if let Some(bn) = &self.stem_bn {
            h = bn.forward_relu(&h, mode)?;
        }
        for block in self.stages.iter().flatten() {
            h = block.forward(&h, mode)?;
        }
        if let Some(bn) = &self.final_bn {
            h = bn.forward_relu(&h, mode)?;
        }
        global_avg_pool(&h)
    }

    /// Logits: `[N, in_channels, H, W]` (f32 in [-1, 1]) -> `[N, num_classes]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.fc.forward(&self.features(x, mode)?)
    }
}
