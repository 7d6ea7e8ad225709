//! Training and evaluation data held in memory as 8-bit images.
//!
//! [`LabeledImages`] is a list of same-sized `RgbImage`s with class ids; [`TrainSet`] adds,
//! for each real image, its synthetic variants (e.g. the outputs of `semaug augment` for
//! that source image), which inherit its class. Images stay `u8` (4x smaller than f32)
//! and become tensors one batch at a time.

use image::RgbImage;
use rayon::prelude::*;
use semaug_data::dataset::Dataset;
use semaug_data::image_io::Limits;

use crate::error::EvalError;

/// Same-sized RGB images with a class id each.
#[derive(Debug, Clone)]
pub struct LabeledImages {
    images: Vec<RgbImage>,
    labels: Vec<usize>,
    num_classes: usize,
}

fn bad(what: &'static str, detail: String) -> EvalError {
    EvalError::Data { what, detail }
}

impl LabeledImages {
    /// Checks one label per image, labels below `num_classes`, one image size, no empty set.
    pub fn new(
        images: Vec<RgbImage>,
        labels: Vec<usize>,
        num_classes: usize,
    ) -> Result<Self, EvalError> {
        if images.len() != labels.len() {
            let detail = format!("{} images but {} labels", images.len(), labels.len());
            return Err(bad("labeled images", detail));
        }
        let Some(first) = images.first() else {
            return Err(bad("labeled images", "no images".into()));
        };
        let size = first.dimensions();
        if size.0 == 0 || size.1 == 0 {
            return Err(bad("labeled images", format!("empty image {size:?}")));
        }
        if let Some(i) = images.iter().position(|im| im.dimensions() != size) {
            let detail = format!(
                "image {i} is {:?}, image 0 is {size:?}; resize them to one size first",
                images[i].dimensions()
            );
            return Err(bad("labeled images", detail));
        }
        if let Some(i) = labels.iter().position(|&l| l >= num_classes) {
            let detail = format!(
                "label {} of image {i} is not below {num_classes}",
                labels[i]
            );
            return Err(bad("labeled images", detail));
        }
        Ok(Self {
            images,
            labels,
            num_classes,
        })
    }

    /// Decodes every image of a labeled dataset (in parallel, in dataset order).
    pub fn from_dataset(dataset: &Dataset, limits: &Limits) -> Result<Self, EvalError> {
        if dataset.is_unlabeled() {
            let detail = format!("{} has no classes", dataset.root.display());
            return Err(bad("dataset", detail));
        }
        let decoded: Vec<Result<(RgbImage, usize), EvalError>> = dataset
            .samples
            .par_iter()
            .map(|s| {
                let image = s
                    .load_image(limits)
                    .map_err(|e| bad("dataset image", format!("{}: {e}", s.id)))?;
                let class = s
                    .class
                    .ok_or_else(|| bad("dataset", format!("sample {} has no class", s.id)))?;
                Ok((image, class))
            })
            .collect();
        let (images, labels) = decoded
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        Self::new(images, labels, dataset.classes.len())
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn images(&self) -> &[RgbImage] {
        &self.images
    }

    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `(width, height)` of every image.
    pub fn image_size(&self) -> (u32, u32) {
        self.images[0].dimensions()
    }
}

/// Real training images and, per real image, its synthetic variants.
#[derive(Debug, Clone)]
pub struct TrainSet {
    real: LabeledImages,
    synthetic: Vec<Vec<RgbImage>>,
}

impl TrainSet {
    pub fn real_only(real: LabeledImages) -> Self {
        let synthetic = vec![Vec::new(); real.len()];
        Self { real, synthetic }
    }

    /// `synthetic[i]` holds the variants of real image `i` (possibly none); all must have
    /// the real images' size.
    pub fn with_synthetic(
        real: LabeledImages,
        synthetic: Vec<Vec<RgbImage>>,
    ) -> Result<Self, EvalError> {
        if synthetic.len() != real.len() {
            let detail = format!(
                "{} variant lists for {} real images; give one (possibly empty) list per image",
                synthetic.len(),
                real.len()
            );
            return Err(bad("synthetic images", detail));
        }
        let size = real.image_size();
        for (i, variants) in synthetic.iter().enumerate() {
            if let Some(v) = variants.iter().position(|im| im.dimensions() != size) {
                let detail = format!(
                    "variant {v} of image {i} is {:?}, the real images are {size:?}",
                    variants[v].dimensions()
                );
                return Err(bad("synthetic images", detail));
            }
        }
        Ok(Self { real, synthetic })
    }

    pub fn real(&self) -> &LabeledImages {
        &self.real
    }

    pub fn variants(&self, index: usize) -> &[RgbImage] {
        &self.synthetic[index]
    }

    pub fn len(&self) -> usize {
        self.real.len()
    }

    pub fn is_empty(&self) -> bool {
        self.real.is_empty()
    }

    /// Total number of synthetic images.
    pub fn synthetic_count(&self) -> usize {
        self.synthetic.iter().map(Vec::len).sum()
    }
}
