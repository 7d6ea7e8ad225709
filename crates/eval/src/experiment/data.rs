//! The images an experiment trains and evaluates on: the datasets with a note on where
//! they came from, class alignment of an evaluation set by class name, and decoding
//! (resized to one size, each image decoded once per experiment).

use std::collections::HashMap;

use image::RgbImage;
use rayon::prelude::*;
use semaug_data::dataset::{Dataset, Sample};
use semaug_data::image_io::Limits;

use super::error::ExperimentError;
use super::results::SetRecord;
use super::synthetic::{ids_sha256, resize};
use crate::data::LabeledImages;

/// An experiment's data.
#[derive(Debug, Clone)]
pub struct ExperimentData {
    /// Lowdata and ratio: the labeled training images. Fewshot: the pool the k-shot
    /// subsets are drawn from (disjoint from `eval`).
    pub train: Dataset,
    /// The evaluation split: never trained on, never used for model selection unless
    /// the selection protocol says so.
    pub eval: Dataset,
    pub train_origin: String,
    pub eval_origin: String,
}

impl ExperimentData {
    /// Checks both sets are labeled and disjoint when they share a root, and gives the
    /// evaluation set the training set's class indices (matched by name).
    pub fn new(
        train: Dataset,
        eval: Dataset,
        train_origin: impl Into<String>,
        eval_origin: impl Into<String>,
    ) -> Result<Self, ExperimentError> {
        for (what, set) in [("training data", &train), ("evaluation data", &eval)] {
            if set.is_unlabeled() || set.is_empty() {
                let detail = format!(
                    "{} has no labeled images; point at a folder of class folders",
                    set.root.display()
                );
                return Err(ExperimentError::data(what, detail));
            }
        }
        if train.root == eval.root {
            let train_ids: std::collections::HashSet<&str> = train.ids().collect();
            if let Some(id) = eval.ids().find(|id| train_ids.contains(id)) {
                let detail =
                    format!("`{id}` is in both; evaluate on images the classifier never sees");
                return Err(ExperimentError::data(
                    "training and evaluation data",
                    detail,
                ));
            }
        }
        let eval = align_classes(&eval, &train.classes)?;
        Ok(Self {
            train,
            eval,
            train_origin: train_origin.into(),
            eval_origin: eval_origin.into(),
        })
    }

    pub fn num_classes(&self) -> usize {
        self.train.classes.len()
    }
}

/// `set` with its labels re-indexed to `classes` by name; a class of `set` that
/// `classes` lacks is an error.
fn align_classes(set: &Dataset, classes: &[String]) -> Result<Dataset, ExperimentError> {
    if set.classes == classes {
        return Ok(set.clone());
    }
    let map = set
        .classes
        .iter()
        .map(|name| {
            classes.iter().position(|c| c == name).ok_or_else(|| {
                let detail = format!(
                    "class `{name}` of {} is not a training class ({})",
                    set.root.display(),
                    classes.join(", ")
                );
                ExperimentError::data("evaluation data", detail)
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let samples = set
        .samples
        .iter()
        .map(|s| Sample {
            class: s.class.map(|c| map[c]),
            ..s.clone()
        })
        .collect();
    Ok(Dataset {
        classes: classes.to_vec(),
        samples,
        ..set.clone()
    })
}

/// The record of one set for `results.json`.
pub fn set_record(set: &Dataset, origin: &str) -> SetRecord {
    SetRecord {
        root: set.root.display().to_string(),
        images: set.len(),
        origin: origin.to_owned(),
        ids_sha256: ids_sha256(set),
    }
}

/// Decoded images by sample id, all at one size.
#[derive(Debug)]
pub struct ImageStore {
    /// `(width, height)` every image is resized to; `None` until the first image when
    /// the experiment keeps the data's size.
    size: Option<(u32, u32)>,
    fixed: bool,
    limits: Limits,
    decoded: HashMap<String, RgbImage>,
}

impl ImageStore {
    pub fn new(side: Option<u32>) -> Self {
        Self {
            size: side.map(|s| (s, s)),
            fixed: side.is_some(),
            limits: Limits::default(),
            decoded: HashMap::new(),
        }
    }

    /// The size images are delivered at (known after the first [`ImageStore::labeled`]).
    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }

    /// The images of `set` with their labels (decoding those not seen before).
    pub fn labeled(&mut self, set: &Dataset) -> Result<LabeledImages, ExperimentError> {
        let key = |s: &Sample| store_key(set, s);
        let missing: Vec<&Sample> = set
            .samples
            .iter()
            .filter(|s| !self.decoded.contains_key(&key(s)))
            .collect();
        let limits = &self.limits;
        let fresh: Vec<(String, RgbImage)> = missing
            .par_iter()
            .map(|s| {
                let image = s.load_image(limits)?;
                Ok((key(s), image))
            })
            .collect::<Result<_, ExperimentError>>()?;
        for (id, image) in fresh {
            let size = *self.size.get_or_insert(image.dimensions());
            let image = if image.dimensions() == size {
                image
            } else if self.fixed {
                resize(&image, size.0, size.1)
            } else {
                let detail = format!(
                    "`{id}` is {:?} but earlier images are {size:?}; give an image size to resize them all",
                    image.dimensions()
                );
                return Err(ExperimentError::data("image sizes", detail));
            };
            self.decoded.insert(id, image);
        }
        let images = set
            .samples
            .iter()
            .map(|s| self.decoded[&key(s)].clone())
            .collect();
        let labels = set
            .samples
            .iter()
            .map(|s| {
                s.class.ok_or_else(|| {
                    ExperimentError::data("dataset", format!("`{}` has no class", s.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabeledImages::new(images, labels, set.classes.len())?)
    }

    /// Forgets decoded images (e.g. the evaluation set once it is held elsewhere).
    pub fn forget(&mut self, set: &Dataset) {
        for s in &set.samples {
            self.decoded.remove(&store_key(set, s));
        }
    }
}

/// Ids are unique within a dataset root only: two folders may both hold `cat/1.png`.
fn store_key(set: &Dataset, sample: &Sample) -> String {
    format!("{}\0{}", set.root.display(), sample.id)
}
