//! Classical augmentations: small seeded transforms on `image::RgbImage`, a pipeline that
//! composes them, and batch-level Mixup / CutMix on tensors.
//!
//! Every transform is a serde config struct with torchvision/CIFAR defaults, a
//! `validate()` that names the bad parameter and its valid range, and
//! `apply(&self, img, rng) -> RgbImage`. All randomness comes from the
//! [`Stream`](semaug_core::seeds::Stream) passed in, so the same stream key gives the same
//! output byte for byte. Semantics follow torchvision (`transforms/transforms.py`,
//! `transforms/autoaugment.py`, `transforms/v2/_augment.py`) and PIL; see each module.
//!
//! - [`geometry`] holds [`RandomCrop`], [`HorizontalFlip`], [`RandomRotation`];
//! - [`color`] holds [`ColorJitter`];
//! - [`erase`] holds [`Cutout`], [`RandomErasing`];
//! - [`auto`] holds [`RandAugment`], [`TrivialAugmentWide`];
//! - [`pipeline`] and [`spec`] hold [`Classical`], built from CLI items by
//!   [`Classical::from_spec_items`] and [`Classical::from_method`];
//! - [`mix`] holds the batch-level [`Mixup`] and [`CutMix`];
//! - [`ops`] holds the PIL-like image operations underneath.

pub mod auto;
pub mod color;
pub mod erase;
pub mod error;
pub mod geometry;
pub mod mix;
pub mod ops;
pub mod pipeline;
pub mod spec;

pub use auto::{AugOp, RandAugment, TrivialAugmentWide};
pub use color::ColorJitter;
pub use erase::{Cutout, EraseFill, RandomErasing, Rect};
pub use error::AugmentError;
pub use geometry::{HorizontalFlip, PadMode, RandomCrop, RandomRotation};
pub use mix::{CutMix, MixedBatch, Mixup};
pub use ops::Interpolation;
pub use pipeline::{Classical, Transform};
pub use spec::{CLASSICAL_ITEMS, METHODS};
