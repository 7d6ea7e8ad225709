//! [`ExperimentConfig`]: everything that decides an experiment, as serde data with
//! defaults per experiment kind and checks that name the valid range.

use serde::{Deserialize, Serialize};

use super::error::{ensure, ExperimentError};
use crate::models::Arch;
use crate::resnet::ResNetConfig;
use crate::trainer::TrainConfig;

/// The paper's three experiments (section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Table 1: one training subset, one accuracy per method.
    Lowdata,
    /// Figure 2: accuracy as the synthetic fraction of the training inputs grows.
    Ratio,
    /// Figures 3 and 6: accuracy against labeled images per class.
    Fewshot,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lowdata => "lowdata",
            Self::Ratio => "ratio",
            Self::Fewshot => "fewshot",
        }
    }
}

/// Which epoch's weights a run is scored with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Selection {
    /// Train on every training image and keep the last epoch.
    Last,
    /// Hold out this fraction of each class of the training images (never augmented,
    /// never trained on) and keep the epoch with the best accuracy on it.
    Holdout { fraction: f64 },
    /// DA-Fusion's protocol: keep the epoch with the best accuracy on the evaluation
    /// split itself. Optimistic (the test set picks the model); reported as such.
    EvalSplit,
}

impl Selection {
    /// One line for tables and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Last => "last epoch (no model selection)".into(),
            Self::Holdout { fraction } => format!(
                "best epoch on {:.0} % of each class held out of the training images",
                fraction * 100.0
            ),
            Self::EvalSplit => "best epoch on the evaluation split itself (DA-Fusion protocol; \
                 optimistic: the evaluation split picks the model)"
                .into(),
        }
    }
}

/// How synthetic images are made and mixed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticPlan {
    /// Synthetic variants generated per real training image.
    pub per_image: usize,
    /// Probability that a drawn sample is replaced by one of its variants (lowdata and
    /// fewshot; DA-Fusion's 0.5). The ratio experiment sets a fixed fraction instead.
    pub probability: f32,
    /// Seed of the generator's noise. One synthetic set serves every classifier seed, so
    /// the seeds measure the classifier's spread, not the generator's.
    pub generation_seed: u64,
}

impl Default for SyntheticPlan {
    fn default() -> Self {
        Self {
            per_image: 1,
            probability: 0.5,
            generation_seed: 0,
        }
    }
}

/// Everything that decides an experiment's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub kind: Kind,
    /// Method entries: a baseline (`vanilla`, `classical`, `cutout`, `mixup`, `cutmix`,
    /// `randaugment`), a classical spec used on the fly (`classical:crop=4,flip,jitter`),
    /// or a generative spec `semaug augment` accepts (`perturb:delta=0.3`).
    pub methods: Vec<String>,
    /// Classifier seeds (weights, data order, augmentation; few-shot: also the subset).
    pub seeds: Vec<u64>,
    /// Ratio: synthetic fractions in [0, 1]. Fewshot: labeled images per class.
    /// Lowdata: empty.
    pub points: Vec<f64>,
    pub arch: Arch,
    /// Channels of the first stage instead of the preset's (later stages scale alike):
    /// narrower networks for quick experiments and tests.
    pub width: Option<usize>,
    /// Resize every image (real and synthetic) to this square side; `None` keeps the
    /// data's size (which must be one size).
    pub image_size: Option<u32>,
    /// The classifier's training recipe; its seed, augmentation, batch mixing and
    /// synthetic mixing are set per run from the method and the seed.
    pub train: TrainConfig,
    /// Each run gets at least this many optimiser steps: tiny few-shot subsets train
    /// for more epochs (warm-up scaled alike). 0 = exactly `train.epochs`.
    pub min_steps: u64,
    pub selection: Selection,
    pub synthetic: SyntheticPlan,
    /// Seed of the data carving (labeled subset, validation split, hold-out).
    pub data_seed: u64,
}

impl ExperimentConfig {
    /// The defaults of one experiment kind: ResNet-20, 5 seeds (8 few-shot), the trainer's
    /// CIFAR recipe; model selection on 10 % held out of the training images, except
    /// few-shot (1 image per class cannot be split) which keeps the last epoch.
    pub fn new(kind: Kind) -> Self {
        let (methods, points, seeds): (&[&str], Vec<f64>, u64) = match kind {
            Kind::Lowdata => (
                &[
                    "vanilla",
                    "classical",
                    "cutout",
                    "mixup",
                    "cutmix",
                    "randaugment",
                ],
                Vec::new(),
                5,
            ),
            Kind::Ratio => (
                &["perturb:delta=0.3"],
                vec![0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0],
                3,
            ),
            Kind::Fewshot => (
                &["classical", "real-guidance", "da-fusion"],
                vec![1.0, 2.0, 4.0, 8.0, 16.0],
                8,
            ),
        };
        Self {
            kind,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            seeds: (0..seeds).collect(),
            points,
            arch: Arch::Resnet20,
            width: None,
            image_size: None,
            train: TrainConfig::default(),
            min_steps: if kind == Kind::Fewshot { 500 } else { 0 },
            selection: match kind {
                Kind::Fewshot => Selection::Last,
                _ => Selection::Holdout { fraction: 0.1 },
            },
            synthetic: SyntheticPlan::default(),
            data_seed: 0,
        }
    }

    pub fn validate(&self) -> Result<(), ExperimentError> {
        ensure(
            !self.methods.is_empty(),
            "methods",
            "(none)",
            "at least one",
        )?;
        ensure(!self.seeds.is_empty(), "seeds", "(none)", "at least one")?;
        let mut seeds = self.seeds.clone();
        seeds.sort_unstable();
        seeds.dedup();
        ensure(
            seeds.len() == self.seeds.len(),
            "seeds",
            format!("{:?}", self.seeds),
            "distinct seeds",
        )?;
        self.validate_points()?;
        if let Some(w) = self.width {
            ensure((1..=4096).contains(&w), "first-stage width", w, "1..=4096")?;
        }
        if let Some(side) = self.image_size {
            ensure((8..=1024).contains(&side), "image size", side, "8..=1024")?;
        }
        if let Selection::Holdout { fraction } = self.selection {
            let ok = fraction > 0.0 && fraction < 1.0;
            ensure(ok, "hold-out fraction", fraction, "0 < fraction < 1")?;
        }
        let s = &self.synthetic;
        ensure(
            (1..=1000).contains(&s.per_image),
            "synthetic images per real image",
            s.per_image,
            "1..=1000",
        )?;
        ensure(
            (0.0..=1.0).contains(&s.probability),
            "synthetic probability",
            s.probability,
            "0..=1",
        )?;
        ensure(
            self.min_steps <= 10_000_000,
            "minimum steps",
            self.min_steps,
            "0..=10000000",
        )?;
        Ok(self.train.validate()?)
    }

    fn validate_points(&self) -> Result<(), ExperimentError> {
        let points = format!("{:?}", self.points);
        match self.kind {
            Kind::Lowdata => ensure(self.points.is_empty(), "points", points, "none for lowdata"),
            Kind::Ratio => ensure(
                !self.points.is_empty() && self.points.iter().all(|r| (0.0..=1.0).contains(r)),
                "synthetic ratios",
                points,
                "one or more fractions in 0..=1",
            ),
            Kind::Fewshot => ensure(
                !self.points.is_empty()
                    && self
                        .points
                        .iter()
                        .all(|k| k.fract() == 0.0 && (1.0..=100_000.0).contains(k)),
                "shots",
                points,
                "one or more whole numbers 1..=100000",
            ),
        }
    }

    /// The classifier for `num_classes` classes.
    pub fn resnet(&self, num_classes: usize) -> ResNetConfig {
        let config = self.arch.config(num_classes);
        match self.width {
            Some(w) => config.with_first_width(w),
            None => config,
        }
    }

    /// The points runs are made at: `[None]` for lowdata.
    pub fn run_points(&self) -> Vec<Option<f64>> {
        if self.kind == Kind::Lowdata {
            vec![None]
        } else {
            self.points.iter().map(|&p| Some(p)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        for kind in [Kind::Lowdata, Kind::Ratio, Kind::Fewshot] {
            ExperimentConfig::new(kind).validate().unwrap();
        }
        let mut c = ExperimentConfig::new(Kind::Fewshot);
        c.points = vec![1.5];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("shots") && e.contains("1.5"), "{e}");
        let mut c = ExperimentConfig::new(Kind::Ratio);
        c.points.push(1.2);
        assert!(c.validate().is_err());
        let mut c = ExperimentConfig::new(Kind::Lowdata);
        c.seeds = vec![1, 1];
        assert!(c.validate().unwrap_err().to_string().contains("distinct"));
        c.seeds = vec![1];
        c.selection = Selection::Holdout { fraction: 1.0 };
        assert!(c.validate().is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = ExperimentConfig::new(Kind::Ratio);
        let text = serde_json::to_string(&c).unwrap();
        let back: ExperimentConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.run_points().len(), 7);
        assert_eq!(
            ExperimentConfig::new(Kind::Lowdata).run_points(),
            vec![None]
        );
    }
}
