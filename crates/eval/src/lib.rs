//! semaug-eval: classifiers that measure what augmentations are worth.
//!
//! Principal types: [`resnet::ResNetConfig`] (ResNet-20, PreAct-ResNet-18 and a small
//! ResNet for 64-128 px, as data) and [`models::Classifier`] (the network with its
//! `VarMap`, seeded init and safetensors I/O); [`batch_norm::BatchNorm2d`] with explicit
//! train / eval [`batch_norm::Mode`]; [`trainer::Trainer`] (SGD + Nesterov, warm-up +
//! cosine, soft-label cross-entropy, real + synthetic mixing, validation-based model
//! selection, checkpoints); [`evaluate::evaluate`] and [`metrics`] (accuracy,
//! class-balanced accuracy, confusion matrix, mean and 95% t-interval over seeds).
//!
//! Key decision: every random draw (weights, data order, synthetic replacement,
//! augmentation, Mixup) comes from a `semaug_core::seeds::Stream` keyed by what it is
//! for (seed, epoch, sample), never by position in a thread's work, so a run is a function
//! of its config and seed, and a resumed run ends bit-identical to an uninterrupted one.

pub mod batch_norm;
mod batch_norm_kernel;
pub mod batches;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod experiment;
pub mod init;
pub mod judge;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod models;
mod option_a;
pub mod resnet;
mod simd;
pub mod trainer;

pub use batch_norm::{BatchNorm2d, Mode, NormPath};
pub use batches::SyntheticMix;
pub use data::{LabeledImages, TrainSet};
pub use error::EvalError;
pub use evaluate::{evaluate, Evaluation};
pub use judge::{train_judge, Judge, JudgeCard, JudgeSettings};
pub use metrics::{ConfusionMatrix, MeanInterval};
pub use models::{Arch, Classifier};
pub use resnet::{BlockKind, ResNet, ResNetConfig, ShortcutKind};
pub use trainer::{BatchMix, Control, Progress, TrainConfig, TrainOutcome, Trainer};
