//! Classification metrics and the spread of a result over seeds.
//!
//! - top-1 accuracy and class-balanced accuracy (the mean of per-class recalls, over the
//!   classes that occur in the labels), both from a [`ConfusionMatrix`];
//! - [`mean_interval`]: the mean over runs with its 95% confidence interval from
//!   Student's t distribution (`mean +- t(0.975, n - 1) * s / sqrt(n)`, `s` the sample
//!   standard deviation); [`t_quantile_975`] tabulates t for 1..=30 degrees of freedom
//!   and uses the normal quantile 1.959964 beyond (t(0.975, 30) = 2.042, so the
//!   approximation is within 4% and shrinking).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("{predictions} predictions for {labels} labels; give one prediction per label")]
    LengthMismatch { predictions: usize, labels: usize },
    #[error("no {what} to compute a metric from")]
    Empty { what: &'static str },
    #[error("class {class} is out of range for {num_classes} classes")]
    ClassOutOfRange { class: usize, num_classes: usize },
    #[error("value {index} is {value}; every value must be finite")]
    NotFinite { index: usize, value: f64 },
}

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub num_classes: usize,
    /// Row-major `[true][predicted]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// The matrix of `predictions` against `labels` (same length, classes below `num_classes`).
    pub fn from_predictions(
        predictions: &[usize],
        labels: &[usize],
        num_classes: usize,
    ) -> Result<Self, MetricsError> {
        if predictions.len() != labels.len() {
            return Err(MetricsError::LengthMismatch {
                predictions: predictions.len(),
                labels: labels.len(),
            });
        }
        let mut matrix = Self::new(num_classes);
        for (&p, &t) in predictions.iter().zip(labels) {
            matrix.add(t, p)?;
        }
        Ok(matrix)
    }

    /// Counts one sample of class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: usize, predicted: usize) -> Result<(), MetricsError> {
        let k = self.num_classes;
        if let Some(&class) = [truth, predicted].iter().find(|c| **c >= k) {
            return Err(MetricsError::ClassOutOfRange {
                class,
                num_classes: k,
            });
        }
        self.counts[truth * k + predicted] += 1;
        Ok(())
    }

    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts
            .get(truth * self.num_classes + predicted)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..self.num_classes).map(|c| self.count(c, c)).sum()
    }

    /// Samples of each true class.
    pub fn class_totals(&self) -> Vec<u64> {
        self.counts
            .chunks(self.num_classes.max(1))
            .map(|row| row.iter().sum())
            .collect()
    }

    /// Top-1 accuracy in [0, 1]; `None` for an empty matrix.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.correct() as f64 / total as f64)
    }

    /// Recall of each class (`None` for a class without samples).
    pub fn per_class_recall(&self) -> Vec<Option<f64>> {
        self.class_totals()
            .into_iter()
            .enumerate()
            .map(|(c, total)| (total > 0).then(|| self.count(c, c) as f64 / total as f64))
            .collect()
    }

    /// Mean per-class recall over the classes that have samples; `None` when empty.
    pub fn balanced_accuracy(&self) -> Option<f64> {
        let recalls: Vec<f64> = self.per_class_recall().into_iter().flatten().collect();
        (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64)
    }
}

/// Top-1 accuracy of `predictions` against `labels`.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> Result<f64, MetricsError> {
    if predictions.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            predictions: predictions.len(),
            labels: labels.len(),
        });
    }
    if labels.is_empty() {
        return Err(MetricsError::Empty { what: "labels" });
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, t)| p == t)
        .count();
    Ok(correct as f64 / labels.len() as f64)
}

/// Mean per-class recall of `predictions` against `labels`.
pub fn balanced_accuracy(
    predictions: &[usize],
    labels: &[usize],
    num_classes: usize,
) -> Result<f64, MetricsError> {
    ConfusionMatrix::from_predictions(predictions, labels, num_classes)?
        .balanced_accuracy()
        .ok_or(MetricsError::Empty { what: "labels" })
}

/// The mean of runs with a 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanInterval {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` for a single run.
    pub std: Option<f64>,
    /// `t(0.975, n - 1) * std / sqrt(n)`; `None` for a single run.
    pub half_width: Option<f64>,
}

impl MeanInterval {
    /// `(mean - half_width, mean + half_width)`, when there is an interval.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

/// Mean and 95% t-interval of `values` (e.g. one accuracy per seed).
pub fn mean_interval(values: &[f64]) -> Result<MeanInterval, MetricsError> {
    if values.is_empty() {
        return Err(MetricsError::Empty { what: "values" });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricsError::NotFinite { index, value });
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Ok(MeanInterval {
            n,
            mean,
            std: None,
            half_width: None,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    Ok(MeanInterval {
        n,
        mean,
        std: Some(std),
        half_width: Some(t_quantile_975(n - 1) * std / (n as f64).sqrt()),
    })
}

/// Student's t 0.975 quantiles for 1..=30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706_204_7,
    4.302_652_7,
    3.182_446_3,
    2.776_445_1,
    2.570_581_8,
    2.446_911_9,
    2.364_624_3,
    2.306_004_1,
    2.262_157_2,
    2.228_138_9,
    2.200_985_2,
    2.178_812_8,
    2.160_368_7,
    2.144_786_7,
    2.131_449_5,
    2.119_905_3,
    2.109_815_6,
    2.100_922_0,
    2.093_024_1,
    2.085_963_4,
    2.079_613_8,
    2.073_873_1,
    2.068_657_6,
    2.063_898_6,
    2.059_538_6,
    2.055_529_4,
    2.051_830_7,
    2.048_407_1,
    2.045_229_6,
    2.042_272_5,
];

/// The standard normal's 0.975 quantile.
pub const Z_975: f64 = 1.959_963_985;

/// Student's t 0.975 quantile for `df` degrees of freedom (table up to 30, the normal
/// quantile beyond; `df = 0` has no quantile and gives infinity).
pub fn t_quantile_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975[df - 1],
        _ => Z_975,
    }
}
