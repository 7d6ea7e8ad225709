//! The masks tree: a folder parallel to the images holding one 8-bit PNG per image
//! (255 = foreground), found by the image's relative path with the extension replaced.
//!
//! A missing mask is allowed (the sample has none; the summary counts them). A mask
//! whose size differs from its image is refused when the pair is loaded, from the
//! headers alone where the image is a file, so the check costs no decoding.

use std::path::{Path, PathBuf};

use image::ImageReader;

use super::{Dataset, DatasetError, Sample, Source};
use crate::image_io::ImageError;

/// Where the mask of the sample with id `id` lies inside the masks tree:
/// `cat/0001.jpg` -> `cat/0001.png`; for CIFAR binary, `data_batch_1.bin#123` ->
/// `data_batch_1/123.png`.
pub fn mask_relative_path(id: &str) -> PathBuf {
    match id.split_once('#') {
        Some((file, record)) => Path::new(file)
            .with_extension("")
            .join(format!("{record}.png")),
        None => Path::new(id).with_extension("png"),
    }
}

/// Width and height from an image file's header, without decoding its pixels.
pub fn image_dimensions(path: &Path) -> Result<(u32, u32), ImageError> {
    let corrupt = |detail: String| ImageError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let reader = ImageReader::open(path)
        .map_err(|source| ImageError::Io {
            path: path.to_owned(),
            source,
        })?
        .with_guessed_format()
        .map_err(|e| corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageError::UnknownFormat {
            path: path.to_owned(),
        });
    }
    reader.into_dimensions().map_err(|e| corrupt(e.to_string()))
}

/// Sets every sample's mask from the tree at `dir` (those without one get `None`).
pub(super) fn attach(dataset: &mut Dataset, dir: &Path) -> Result<(), DatasetError> {
    if !dir.is_dir() {
        return Err(DatasetError::MasksNotFound {
            path: dir.to_owned(),
        });
    }
    for sample in &mut dataset.samples {
        let relative = match &sample.source {
            // The file path is authoritative where the id was made lossy.
            Source::File(path) => path
                .strip_prefix(&dataset.root)
                .map(|p| p.with_extension("png"))
                .unwrap_or_else(|_| mask_relative_path(&sample.id)),
            Source::Memory(_) => mask_relative_path(&sample.id),
        };
        let candidate = dir.join(relative);
        sample.mask = candidate.is_file().then_some(candidate);
    }
    dataset.masks_dir = Some(dir.to_owned());
    Ok(())
}

/// Compares the header sizes of a sample's image and mask (no-op without a mask).
pub(super) fn check_mask_size(sample: &Sample) -> Result<(), DatasetError> {
    let Some(mask) = &sample.mask else {
        return Ok(());
    };
    let image_size = match &sample.source {
        Source::File(path) => image_dimensions(path)?,
        Source::Memory(image) => image.dimensions(),
    };
    ensure_same_size(sample, mask, image_size, image_dimensions(mask)?)
}

pub(super) fn ensure_same_size(
    sample: &Sample,
    mask: &Path,
    (image_width, image_height): (u32, u32),
    (mask_width, mask_height): (u32, u32),
) -> Result<(), DatasetError> {
    if (image_width, image_height) == (mask_width, mask_height) {
        return Ok(());
    }
    Err(DatasetError::MaskSizeMismatch {
        image: sample
            .path()
            .map_or_else(|| PathBuf::from(&sample.id), Path::to_owned),
        mask: mask.to_owned(),
        image_width,
        image_height,
        mask_width,
        mask_height,
    })
}
