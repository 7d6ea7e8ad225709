//! Batch-level Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) over f32 NCHW
//! tensors, producing soft labels `[B, num_classes]`.
//!
//! Each sample `i` is mixed with partner `perm[i]` of a seeded permutation (as
//! `facebookresearch/mixup-cifar10` does; torchvision v2's `_augment.py` pairs neighbours
//! instead). Mixup: `x = lam x_i + (1 - lam) x_perm`, `lam ~ Beta(alpha, alpha)`. CutMix
//! follows torchvision v2 `CutMix`: a box of half-sides `int(0.5 sqrt(1 - lam) W)` and
//! `int(0.5 sqrt(1 - lam) H)` around a uniform centre, clipped, pasted from the partner;
//! `lam` is then corrected to `1 - box area / image area`. Labels may be class ids `[B]`
//! or already-soft `[B, num_classes]`, so the two can be chained.

use candle_core::{DType, Tensor};
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::erase::Rect;
use super::error::{ensure, AugmentError};

/// A mixed batch: images like the input, soft labels `[B, num_classes]` (f32, rows sum
/// to 1), the weight `lambda` of each sample's own image and its partner indices.
#[derive(Debug, Clone)]
pub struct MixedBatch {
    pub images: Tensor,
    pub labels: Tensor,
    pub lambda: f32,
    pub partners: Vec<usize>,
    /// The pasted box (CutMix only).
    pub cut: Option<Rect>,
}

/// Mixup with `lambda ~ Beta(alpha, alpha)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mixup {
    pub alpha: f32,
}

impl Default for Mixup {
    /// alpha = 1 (uniform lambda), the mixup-cifar10 and torchvision default.
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

/// CutMix with `lambda ~ Beta(alpha, alpha)`, corrected to the pasted area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CutMix {
    pub alpha: f32,
}

impl Default for CutMix {
    /// alpha = 1, the CutMix paper's and torchvision's default.
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

fn validate_alpha(method: &'static str, alpha: f32) -> Result<(), AugmentError> {
    let ok = alpha > 0.0 && alpha <= 1000.0;
    ensure(ok, method, "alpha", alpha, "0 < alpha <= 1000")
}

impl Mixup {
    pub fn validate(&self) -> Result<(), AugmentError> {
        validate_alpha("mixup", self.alpha)
    }

    /// Mix `images` `[B, C, H, W]` with `labels` (`[B]` class ids or `[B, num_classes]`).
    pub fn apply(
        &self,
        images: &Tensor,
        labels: &Tensor,
        num_classes: usize,
        rng: &mut Stream,
    ) -> Result<MixedBatch, AugmentError> {
        let method = "mixup";
        self.validate()?;
        let batch = Batch::check(method, images, labels, num_classes)?;
        let lambda = rng.beta(self.alpha, self.alpha);
        let partners = permutation(batch.size, rng);
        let t = |source| AugmentError::Tensor { method, source };
        let partner_images = images
            .index_select(&index_tensor(&partners, images)?, 0)
            .map_err(t)?;
        let own = images.affine(lambda as f64, 0.0).map_err(t)?;
        let other = partner_images.affine(1.0 - lambda as f64, 0.0).map_err(t)?;
        Ok(MixedBatch {
            images: (own + other).map_err(t)?,
            labels: batch.mixed_labels(method, &partners, lambda, images)?,
            lambda,
            partners,
            cut: None,
        })
    }
}

impl CutMix {
    pub fn validate(&self) -> Result<(), AugmentError> {
        validate_alpha("cutmix", self.alpha)
    }

    /// Paste a box from each sample's partner; label weights are the area fractions.
    pub fn apply(
        &self,
        images: &Tensor,
        labels: &Tensor,
        num_classes: usize,
        rng: &mut Stream,
    ) -> Result<MixedBatch, AugmentError> {
        let method = "cutmix";
        self.validate()?;
        let batch = Batch::check(method, images, labels, num_classes)?;
        let drawn = rng.beta(self.alpha, self.alpha);
        let partners = permutation(batch.size, rng);
        let cut = cut_box(drawn, batch.width, batch.height, rng);
        let lambda = 1.0 - cut.area() as f32 / (batch.width * batch.height) as f32;
        let t = |source| AugmentError::Tensor { method, source };
        let partner_images = images
            .index_select(&index_tensor(&partners, images)?, 0)
            .map_err(t)?;
        let mask = box_mask(cut, batch.width, batch.height, images)?;
        let mixed = mask.where_cond(&partner_images, images).map_err(t)?;
        Ok(MixedBatch {
            images: mixed,
            labels: batch.mixed_labels(method, &partners, lambda, images)?,
            lambda,
            partners,
            cut: Some(cut),
        })
    }
}

/// torchvision v2 CutMix's box: centre uniform over the pixels (x first), half-sides
/// truncated, clipped to the image.
fn cut_box(lambda: f32, width: usize, height: usize, rng: &mut Stream) -> Rect {
    let cx = rng.below(width) as i64;
    let cy = rng.below(height) as i64;
    let r = 0.5 * (1.0 - lambda as f64).max(0.0).sqrt();
    let half_w = (r * width as f64) as i64;
    let half_h = (r * height as f64) as i64;
    let (x0, x1) = ((cx - half_w).max(0), (cx + half_w).min(width as i64));
    let (y0, y1) = ((cy - half_h).max(0), (cy + half_h).min(height as i64));
    Rect {
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
    }
}

/// A `[1, 1, H, W]` u8 mask, 1 inside `cut`, broadcast over batch and channels.
fn box_mask(cut: Rect, width: usize, height: usize, like: &Tensor) -> Result<Tensor, AugmentError> {
    let t = |source| AugmentError::Tensor {
        method: "cutmix",
        source,
    };
    let data: Vec<u8> = (0..height * width)
        .map(|i| cut.contains((i % width) as u32, (i / width) as u32) as u8)
        .collect();
    Tensor::from_vec(data, (1, 1, height, width), like.device())
        .and_then(|m| m.broadcast_as(like.shape()))
        .map_err(t)
}

fn permutation(size: usize, rng: &mut Stream) -> Vec<usize> {
    let mut order: Vec<usize> = (0..size).collect();
    rng.shuffle(&mut order);
    order
}

fn index_tensor(indices: &[usize], like: &Tensor) -> Result<Tensor, AugmentError> {
    let data: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
    Tensor::from_vec(data, indices.len(), like.device()).map_err(|source| AugmentError::Tensor {
        method: "mix",
        source,
    })
}

/// A checked batch: its sizes and its labels as soft rows.
struct Batch {
    size: usize,
    width: usize,
    height: usize,
    num_classes: usize,
    /// `[size * num_classes]`, row-major.
    soft: Vec<f32>,
}

impl Batch {
    fn check(
        method: &'static str,
        images: &Tensor,
        labels: &Tensor,
        num_classes: usize,
    ) -> Result<Self, AugmentError> {
        let bad = |detail: String| AugmentError::BadBatch { method, detail };
        let (size, _, height, width) = images.dims4().map_err(|_| {
            bad(format!(
                "images must be [B, C, H, W], got {:?}",
                images.dims()
            ))
        })?;
        if size == 0 || height == 0 || width == 0 || num_classes == 0 {
            return Err(bad(format!(
                "empty batch: images {:?}, {num_classes} classes",
                images.dims()
            )));
        }
        if !images.dtype().is_float() {
            return Err(bad(format!(
                "images must be float, got {:?}",
                images.dtype()
            )));
        }
        let soft = soft_rows(method, labels, size, num_classes)?;
        Ok(Self {
            size,
            width,
            height,
            num_classes,
            soft,
        })
    }

    /// `lambda * y_i + (1 - lambda) * y_partner(i)` as a `[B, num_classes]` f32 tensor.
    fn mixed_labels(
        &self,
        method: &'static str,
        partners: &[usize],
        lambda: f32,
        like: &Tensor,
    ) -> Result<Tensor, AugmentError> {
        let k = self.num_classes;
        let mut mixed = Vec::with_capacity(self.soft.len());
        for (i, &j) in partners.iter().enumerate() {
            let (own, other) = (
                &self.soft[i * k..(i + 1) * k],
                &self.soft[j * k..(j + 1) * k],
            );
            mixed.extend(
                own.iter()
                    .zip(other)
                    .map(|(a, b)| lambda * a + (1.0 - lambda) * b),
            );
        }
        Tensor::from_vec(mixed, (self.size, k), like.device())
            .map_err(|source| AugmentError::Tensor { method, source })
    }
}

/// Labels as soft rows: class ids `[B]` become one-hot, `[B, K]` rows are taken as given.
fn soft_rows(
    method: &'static str,
    labels: &Tensor,
    size: usize,
    num_classes: usize,
) -> Result<Vec<f32>, AugmentError> {
    let bad = |detail: String| AugmentError::BadBatch { method, detail };
    let t = |source| AugmentError::Tensor { method, source };
    match labels.dims() {
        [n] if *n == size => {
            let ids = labels
                .to_dtype(DType::F64)
                .and_then(|l| l.to_vec1::<f64>())
                .map_err(t)?;
            let mut rows = vec![0.0f32; size * num_classes];
            for (i, id) in ids.into_iter().enumerate() {
                let ok = id >= 0.0 && id.fract() == 0.0 && id < num_classes as f64;
                if !ok {
                    return Err(bad(format!(
                        "label {id} of sample {i} is not a class id below {num_classes}"
                    )));
                }
                rows[i * num_classes + id as usize] = 1.0;
            }
            Ok(rows)
        }
        [n, k] if *n == size && *k == num_classes => labels
            .to_dtype(DType::F32)
            .and_then(|l| l.flatten_all())
            .and_then(|l| l.to_vec1::<f32>())
            .map_err(t),
        dims => Err(bad(format!(
            "labels must be [{size}] class ids or [{size}, {num_classes}] soft labels, got {dims:?}"
        ))),
    }
}
