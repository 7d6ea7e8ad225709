//! Datasets: an ordered list of samples (id, class, where the pixels come from, optional
//! mask) plus the class names.
//!
//! Two layouts open into the same [`Dataset`]: an ImageFolder tree ([`ImageFolder`]: one
//! class per sub-folder, or a flat folder of unlabeled images) and the CIFAR-10 / CIFAR-100
//! binary release ([`CifarBinary`]); [`open_dataset`] tells them apart. Opening only lists
//! files; pixels are decoded lazily by [`Sample::load_image`], and [`Dataset::check`]
//! decodes everything up front when a run wants to know about bad files before it starts.
//!
//! Key decision: sample order, class order and every subset are pure functions of the
//! files on disk and a seed, so a run is reproducible and its outputs can name their
//! source by a stable id (`cat/0001.jpg`, `data_batch_1.bin#123`). In lenient mode a bad
//! file becomes a [`Skipped`] record instead of an error; nothing is silently dropped.

mod carve;
mod cifar;
mod error;
mod folder;
mod masks;
mod materialize;
mod subset;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::image_io::{decode_file, ImageError, Limits};

pub use carve::{carve, CarveSpec, Carved, Labeled};
pub use cifar::{CifarBinary, CifarFormat};
pub use error::DatasetError;
pub use folder::{is_image_path, read_classes_json, ImageFolder, CLASSES_JSON, IMAGE_EXTENSIONS};
pub use masks::{image_dimensions, mask_relative_path};
pub use materialize::IDS_FILE;
pub use summary::{ClassCount, MaskCounts, SizeCount, Summary};

/// How to open a dataset.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Skip and record bad inputs (empty classes, unreadable folders, corrupt files,
    /// mismatched masks) instead of failing. Strict (false) is the default.
    pub lenient: bool,
    /// A masks tree parallel to the images: the mask of `cat/0001.jpg` is
    /// `masks/cat/0001.png`. Images without a mask are allowed and counted.
    pub masks: Option<PathBuf>,
}

impl OpenOptions {
    pub fn lenient() -> Self {
        Self {
            lenient: true,
            ..Self::default()
        }
    }

    pub fn with_masks(mut self, dir: impl Into<PathBuf>) -> Self {
        self.masks = Some(dir.into());
        self
    }
}

/// Where a sample's pixels come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An image file, decoded on demand.
    File(PathBuf),
    /// Pixels already in memory (CIFAR binary records); shared, so subsets are cheap.
    Memory(Arc<RgbImage>),
}

/// One image of a dataset.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Stable id: the path relative to the root with `/` separators (`cat/0001.jpg`), or
    /// `file#record` for CIFAR binary (`data_batch_1.bin#123`, record counted from 0).
    pub id: String,
    /// Index into [`Dataset::classes`]; `None` for an unlabeled dataset.
    pub class: Option<usize>,
    pub source: Source,
    /// The mask file, when a masks tree was given and holds one for this image.
    pub mask: Option<PathBuf>,
}

/// An input left out in lenient mode, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The sample id, or the folder / file name when a whole folder or file was skipped.
    pub id: String,
    pub path: PathBuf,
    pub reason: String,
}

/// An ordered list of samples and the names of their classes.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    /// Class names; a class's index is its position here. Empty for unlabeled data.
    /// A class skipped in lenient mode keeps its name (and index) with no samples.
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
    /// Inputs left out (lenient mode), in the order they were met.
    pub skipped: Vec<Skipped>,
    /// The masks tree given when opening, if any.
    pub masks_dir: Option<PathBuf>,
}

/// Opens `path` as CIFAR binary when it is a `.bin` file or a folder holding `.bin`
/// files, and as an [`ImageFolder`] otherwise.
pub fn open_dataset(path: &Path, options: &OpenOptions) -> Result<Dataset, DatasetError> {
    if cifar::looks_like_cifar(path) {
        CifarBinary::open(path, options)
    } else {
        ImageFolder::open(path, options)
    }
}

impl Sample {
    /// A 64-bit key for this sample's random streams: `seeds::label(id)`.
    pub fn key(&self) -> u64 {
        semaug_core::seeds::label(&self.id)
    }

    /// The image file, or `None` for in-memory pixels.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File(path) => Some(path),
            Source::Memory(_) => None,
        }
    }

    /// The pixels as 8-bit RGB (decoded within `limits` for a file).
    pub fn load_image(&self, limits: &Limits) -> Result<RgbImage, ImageError> {
        match &self.source {
            Source::File(path) => decode_file(path, limits),
            Source::Memory(image) => Ok(image.as_ref().clone()),
        }
    }

    /// The mask as 8-bit grey (255 = foreground), or `None` when the sample has none.
    /// Colour masks are converted with the sRGB luma weights.
    pub fn load_mask(&self, limits: &Limits) -> Result<Option<GrayImage>, ImageError> {
        match &self.mask {
            Some(path) => Ok(Some(image::imageops::grayscale(&decode_file(
                path, limits,
            )?))),
            None => Ok(None),
        }
    }

    /// The mask of an image already decoded at `size`; a mask of another size is an
    /// error naming both files.
    pub fn load_mask_for(
        &self,
        size: (u32, u32),
        limits: &Limits,
    ) -> Result<Option<GrayImage>, DatasetError> {
        let mask = self.load_mask(limits)?;
        if let (Some(mask_image), Some(mask_path)) = (&mask, &self.mask) {
            masks::ensure_same_size(self, mask_path, size, mask_image.dimensions())?;
        }
        Ok(mask)
    }

    /// Image and mask together; a mask whose size differs from its image is an error
    /// naming both files, found from the headers before either is decoded.
    pub fn load_image_and_mask(
        &self,
        limits: &Limits,
    ) -> Result<(RgbImage, Option<GrayImage>), DatasetError> {
        masks::check_mask_size(self)?;
        let image = self.load_image(limits)?;
        let mask = self.load_mask(limits)?;
        if let (Some(mask_image), Some(mask_path)) = (&mask, &self.mask) {
            // Headers can lie (or be unavailable for in-memory images): check again.
            masks::ensure_same_size(self, mask_path, image.dimensions(), mask_image.dimensions())?;
        }
        Ok((image, mask))
    }

    /// Where this sample's data lives, for messages: the image file, or root/id.
    pub fn location(&self, root: &Path) -> PathBuf {
        match &self.source {
            Source::File(path) => path.clone(),
            Source::Memory(_) => root.join(&self.id),
        }
    }
}

impl Skipped {
    /// The record for `sample` failing with `error`.
    pub fn sample(sample: &Sample, root: &Path, error: &dyn std::fmt::Display) -> Self {
        Self {
            id: sample.id.clone(),
            path: sample.location(root),
            reason: error.to_string(),
        }
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// True when the samples carry no class labels.
    pub fn is_unlabeled(&self) -> bool {
        self.classes.is_empty()
    }

    /// Samples per class, indexed like [`Dataset::classes`].
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for class in self.samples.iter().filter_map(|s| s.class) {
            counts[class] += 1;
        }
        counts
    }

    /// The index of a class name.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c == name)
    }

    /// The sample with this id.
    pub fn get(&self, id: &str) -> Option<&Sample> {
        self.samples.iter().find(|s| s.id == id)
    }

    /// Sample ids in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.samples.iter().map(|s| s.id.as_str())
    }

    /// (found, missing) masks, when a masks tree was given.
    pub fn mask_counts(&self) -> Option<(usize, usize)> {
        self.masks_dir.as_ref()?;
        let found = self.samples.iter().filter(|s| s.mask.is_some()).count();
        Some((found, self.samples.len() - found))
    }

    /// Decodes every image (and its mask, checking the sizes agree) in parallel and
    /// returns the samples that failed, in dataset order. Decoded pixels are dropped.
    pub fn check(&self, limits: &Limits) -> Vec<Skipped> {
        let failures: Vec<Option<Skipped>> = self
            .samples
            .par_iter()
            .map(|sample| {
                sample
                    .load_image_and_mask(limits)
                    .err()
                    .map(|e| Skipped::sample(sample, &self.root, &e))
            })
            .collect();
        failures.into_iter().flatten().collect()
    }

    /// Drops the samples named in `bad` and records them as skipped.
    pub fn remove_skipped(&mut self, bad: Vec<Skipped>) {
        let ids: std::collections::HashSet<&str> = bad.iter().map(|s| s.id.as_str()).collect();
        self.samples.retain(|s| !ids.contains(s.id.as_str()));
        self.skipped.extend(bad);
    }

    /// [`Dataset::check`], then: strict, fail if anything is bad; lenient, drop and
    /// record the bad samples. Returns how many were dropped.
    pub fn validate(&mut self, limits: &Limits, lenient: bool) -> Result<usize, DatasetError> {
        let bad = self.check(limits);
        match bad.first() {
            None => Ok(0),
            Some(first) if !lenient => Err(DatasetError::InvalidFiles {
                count: bad.len(),
                first: first.reason.clone(),
            }),
            Some(_) => {
                let count = bad.len();
                self.remove_skipped(bad);
                Ok(count)
            }
        }
    }

    /// The same dataset with only the samples `keep` accepts (order kept).
    pub fn filter(&self, keep: impl Fn(&Sample) -> bool) -> Dataset {
        Dataset {
            root: self.root.clone(),
            classes: self.classes.clone(),
            samples: self.samples.iter().filter(|s| keep(s)).cloned().collect(),
            skipped: self.skipped.clone(),
            masks_dir: self.masks_dir.clone(),
        }
    }

    /// The dataset without the samples whose ids are listed (e.g. a validation set).
    pub fn exclude<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Dataset {
        let ids: std::collections::HashSet<&str> = ids.into_iter().collect();
        self.filter(|s| !ids.contains(s.id.as_str()))
    }

    /// Only the named classes, re-indexed in the order given (for novel-class
    /// experiments). Unknown or repeated names are errors.
    pub fn with_classes<S: AsRef<str>>(&self, names: &[S]) -> Result<Dataset, DatasetError> {
        let mut new_index = vec![None; self.classes.len()];
        for (new, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let old = self
                .class_index(name)
                .ok_or_else(|| DatasetError::UnknownClass {
                    name: name.to_owned(),
                    known: self.classes.join(", "),
                })?;
            if new_index[old].replace(new).is_some() {
                return Err(DatasetError::DuplicateClass {
                    name: name.to_owned(),
                });
            }
        }
        let samples = self
            .samples
            .iter()
            .filter_map(|s| {
                let class = new_index[s.class?]?;
                Some(Sample {
                    class: Some(class),
                    ..s.clone()
                })
            })
            .collect();
        Ok(Dataset {
            root: self.root.clone(),
            classes: names.iter().map(|n| n.as_ref().to_owned()).collect(),
            samples,
            skipped: self.skipped.clone(),
            masks_dir: self.masks_dir.clone(),
        })
    }

    /// Attaches a masks tree (see [`mask_relative_path`]); replaces any earlier one.
    pub fn attach_masks(&mut self, dir: &Path) -> Result<(), DatasetError> {
        masks::attach(self, dir)
    }
}

/// Strict: the error. Lenient: record it and carry on.
fn strict_or_skip(
    lenient: bool,
    skipped: &mut Vec<Skipped>,
    id: &str,
    path: &Path,
    error: DatasetError,
) -> Result<(), DatasetError> {
    if !lenient {
        return Err(error);
    }
    skipped.push(Skipped {
        id: id.to_owned(),
        path: path.to_owned(),
        reason: error.to_string(),
    });
    Ok(())
}
