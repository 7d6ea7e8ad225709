//! [`Classical`]: a list of transforms applied in order, serde-able as
//! `[{"crop": {"padding": 4}}, {"flip": {}}]`.

use image::RgbImage;
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::auto::{RandAugment, TrivialAugmentWide};
use super::color::ColorJitter;
use super::erase::{Cutout, RandomErasing};
use super::error::AugmentError;
use super::geometry::{HorizontalFlip, RandomCrop, RandomRotation};

/// One transform of a pipeline, tagged by its spec name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Crop(RandomCrop),
    Flip(HorizontalFlip),
    Jitter(ColorJitter),
    Rotate(RandomRotation),
    Cutout(Cutout),
    Erase(RandomErasing),
    #[serde(rename = "randaugment")]
    RandAugment(RandAugment),
    #[serde(rename = "trivialaugment")]
    TrivialAugment(TrivialAugmentWide),
}

impl Transform {
    pub fn validate(&self) -> Result<(), AugmentError> {
        match self {
            Transform::Crop(t) => t.validate(),
            Transform::Flip(t) => t.validate(),
            Transform::Jitter(t) => t.validate(),
            Transform::Rotate(t) => t.validate(),
            Transform::Cutout(t) => t.validate(),
            Transform::Erase(t) => t.validate(),
            Transform::RandAugment(t) => t.validate(),
            Transform::TrivialAugment(t) => t.validate(),
        }
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        match self {
            Transform::Crop(t) => t.apply(img, rng),
            Transform::Flip(t) => t.apply(img, rng),
            Transform::Jitter(t) => t.apply(img, rng),
            Transform::Rotate(t) => t.apply(img, rng),
            Transform::Cutout(t) => t.apply(img, rng),
            Transform::Erase(t) => t.apply(img, rng),
            Transform::RandAugment(t) => t.apply(img, rng),
            Transform::TrivialAugment(t) => t.apply(img, rng),
        }
    }
}

/// Transforms applied in order, all drawing from one stream in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Classical {
    pub transforms: Vec<Transform>,
}

impl Default for Classical {
    /// The CIFAR "classical" recipe: `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`.
    fn default() -> Self {
        Self {
            transforms: vec![
                Transform::Crop(RandomCrop::default()),
                Transform::Flip(HorizontalFlip::default()),
            ],
        }
    }
}

impl Classical {
    pub fn new(transforms: Vec<Transform>) -> Self {
        Self { transforms }
    }

    pub fn validate(&self) -> Result<(), AugmentError> {
        self.transforms.iter().try_for_each(Transform::validate)
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let mut out = img.clone();
        for transform in &self.transforms {
            out = transform.apply(&out, rng);
        }
        out
    }
}
