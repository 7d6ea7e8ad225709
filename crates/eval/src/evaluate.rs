//! Running a trained classifier over labeled images: predictions, loss and the
//! confusion matrix they give.

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::batch_norm::Mode;
use crate::batches::write_pixels;
use crate::data::LabeledImages;
use crate::error::EvalError;
use crate::loss::{argmax_rows, one_hot, soft_cross_entropy};
use crate::metrics::ConfusionMatrix;
use crate::models::Classifier;

/// A classifier's results on one labeled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub predictions: Vec<usize>,
    pub confusion: ConfusionMatrix,
    /// Mean cross-entropy.
    pub loss: f64,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        self.confusion.accuracy().unwrap_or(0.0)
    }

    pub fn balanced_accuracy(&self) -> f64 {
        self.confusion.balanced_accuracy().unwrap_or(0.0)
    }
}

/// Eval-mode predictions for `data` in batches of `batch_size` (no augmentation).
pub fn evaluate(
    model: &Classifier,
    data: &LabeledImages,
    batch_size: usize,
) -> Result<Evaluation, EvalError> {
    let k = model.config.num_classes;
    if data.num_classes() > k {
        return Err(EvalError::Data {
            what: "evaluation set",
            detail: format!("{} classes, the model has {k}", data.num_classes()),
        });
    }
    let device = model_device(model);
    let mut predictions = Vec::with_capacity(data.len());
    let mut loss_sum = 0.0;
    let batch_size = batch_size.max(1);
    for (images, labels) in data
        .images()
        .chunks(batch_size)
        .zip(data.labels().chunks(batch_size))
    {
        let logits = model.forward(&to_tensor(images, &device)?, Mode::Eval)?;
        let targets = one_hot(labels, k, &device)?;
        let loss = soft_cross_entropy(&logits, &targets)?.to_scalar::<f32>()?;
        loss_sum += f64::from(loss) * labels.len() as f64;
        predictions.extend(argmax_rows(&logits)?);
    }
    let confusion = ConfusionMatrix::from_predictions(&predictions, data.labels(), k)?;
    Ok(Evaluation {
        predictions,
        confusion,
        loss: loss_sum / data.len().max(1) as f64,
    })
}

/// Same-sized images as `[N, 3, H, W]` f32 in [-1, 1].
fn to_tensor(images: &[RgbImage], device: &Device) -> Result<Tensor, EvalError> {
    let (w, h) = images[0].dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; images.len() * 3 * plane];
    data.par_chunks_mut(3 * plane)
        .zip(images.par_iter())
        .try_for_each(|(out, image)| write_pixels(image, (w, h), out))?;
    Ok(Tensor::from_vec(
        data,
        (images.len(), 3, h as usize, w as usize),
        device,
    )?)
}

pub(crate) fn model_device(model: &Classifier) -> Device {
    model
        .trainable()
        .iter()
        .next()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu)
}
