//! The methods an experiment compares, and how each one trains.
//!
//! | entry | training inputs |
//! |---|---|
//! | `vanilla` | the real images, untouched |
//! | `classical` | random crop (pad 1/8 of the side) + horizontal flip |
//! | `cutout` | classical + one hole of half the side (DeVries and Taylor: 16 px at 32) |
//! | `mixup` | classical + Mixup (alpha 1) |
//! | `cutmix` | classical + CutMix (alpha 1) |
//! | `randaugment` | classical + RandAugment (n 2, m 9) |
//! | `classical:...`, `randaugment:...`, `trivialaugment` | that `semaug augment` pipeline, drawn anew every epoch |
//! | any generative spec (`perturb:delta=0.3`, `da-fusion`, ...) | classical on real and synthetic images; each drawn sample is replaced by one of its synthetic variants with the configured probability (ratio: a fixed fraction) |
//!
//! A list of entries on one command line is split by [`split_methods`].

use semaug_data::augment::{
    Classical, CutMix, Cutout, HorizontalFlip, Mixup, RandAugment, RandomCrop, Transform,
};
use semaug_ops::method::Method;
use semaug_ops::spec::SpecError;

use super::error::ExperimentError;
use crate::trainer::BatchMix;

/// The fixed baselines, in the order of the paper's Table 1.
pub const BASELINES: [&str; 6] = [
    "vanilla",
    "classical",
    "cutout",
    "mixup",
    "cutmix",
    "randaugment",
];

/// One parsed method entry.
#[derive(Debug, Clone)]
pub struct ExperimentMethod {
    /// The entry as given (the key of its runs).
    pub spec: String,
    pub kind: MethodKind,
}

#[derive(Debug, Clone)]
pub enum MethodKind {
    /// One of [`BASELINES`].
    Baseline(&'static str),
    /// A classical `semaug augment` method applied on the fly.
    Pipeline(Classical),
    /// Synthetic images from a generative method, made ahead of training.
    Generative(Method),
}

impl ExperimentMethod {
    pub fn parse(spec: &str) -> Result<Self, ExperimentError> {
        let spec = spec.trim().to_owned();
        if let Some(name) = BASELINES.iter().find(|b| **b == spec) {
            return Ok(Self {
                spec,
                kind: MethodKind::Baseline(name),
            });
        }
        let method = Method::parse(&spec).map_err(|source| {
            let source = match source {
                SpecError::UnknownMethod { name, valid } => SpecError::UnknownMethod {
                    name,
                    valid: format!("{}, {valid}", BASELINES.join(", ")),
                },
                other => other,
            };
            ExperimentError::Method {
                spec: spec.clone(),
                source,
            }
        })?;
        let kind = match method {
            Method::Classical { pipeline, .. } => MethodKind::Pipeline(pipeline),
            generative => MethodKind::Generative(generative),
        };
        Ok(Self { spec, kind })
    }

    pub fn generative(&self) -> Option<&Method> {
        match &self.kind {
            MethodKind::Generative(m) => Some(m),
            _ => None,
        }
    }

    /// Per-sample augmentation and batch mixing for images of `side` pixels.
    pub fn training(&self, side: u32) -> (Classical, BatchMix) {
        let with = |extra: Transform| {
            let mut c = crop_flip(side);
            c.transforms.push(extra);
            c
        };
        match &self.kind {
            MethodKind::Baseline(name) => match *name {
                "vanilla" => (Classical::new(Vec::new()), BatchMix::None),
                "cutout" => (
                    with(Transform::Cutout(Cutout {
                        size: (side / 2).max(1),
                        ..Cutout::default()
                    })),
                    BatchMix::None,
                ),
                "mixup" => (crop_flip(side), BatchMix::Mixup(Mixup::default())),
                "cutmix" => (crop_flip(side), BatchMix::Cutmix(CutMix::default())),
                "randaugment" => (
                    with(Transform::RandAugment(RandAugment::default())),
                    BatchMix::None,
                ),
                _ => (crop_flip(side), BatchMix::None),
            },
            MethodKind::Pipeline(pipeline) => (pipeline.clone(), BatchMix::None),
            MethodKind::Generative(_) => (crop_flip(side), BatchMix::None),
        }
    }
}

/// Random crop with reflection-free zero padding of 1/8 of the side (4 px at 32) and a
/// horizontal flip: the CIFAR recipe, scaled to the image.
fn crop_flip(side: u32) -> Classical {
    Classical::new(vec![
        Transform::Crop(RandomCrop {
            padding: (side / 8).max(1),
            ..RandomCrop::default()
        }),
        Transform::Flip(HorizontalFlip::default()),
    ])
}

/// Splits a command-line list of method entries. Entries are separated by `;` when the
/// text has one; otherwise by commas, where a piece starts a new entry when it names a
/// method (`vanilla`, `perturb:delta=0.3`) and continues the previous spec when it is a
/// parameter (`steps=2`, `flip`, `0.25`): `vanilla,perturb:delta=0.3,steps=2,splice`
/// is `vanilla`, `perturb:delta=0.3,steps=2`, `splice`.
pub fn split_methods(text: &str) -> Vec<String> {
    if text.contains(';') {
        return text
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let mut entries: Vec<String> = Vec::new();
    for piece in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let starts_entry = piece.contains(':') || is_method_name(piece);
        match entries.last_mut() {
            Some(last) if !starts_entry => {
                last.push(',');
                last.push_str(piece);
            }
            _ => entries.push(piece.to_owned()),
        }
    }
    entries
}

fn is_method_name(piece: &str) -> bool {
    !piece.contains('=') && (BASELINES.contains(&piece) || Method::names().contains(&piece))
}

/// Every entry parsed, or the first that fails.
pub fn parse_methods(entries: &[String]) -> Result<Vec<ExperimentMethod>, ExperimentError> {
    entries.iter().map(|e| ExperimentMethod::parse(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_into_entries() {
        assert_eq!(
            split_methods("vanilla, perturb:delta=0.3,steps=2,splice,classical:crop=4,flip"),
            vec![
                "vanilla",
                "perturb:delta=0.3,steps=2",
                "splice",
                "classical:crop=4,flip"
            ]
        );
        assert_eq!(
            split_methods("compose:levels=4,p=0.4,0.3,0.2,0.1,cutmix"),
            vec!["compose:levels=4,p=0.4,0.3,0.2,0.1", "cutmix"]
        );
        assert_eq!(
            split_methods("classical:crop=4,randaugment; mixup"),
            vec!["classical:crop=4,randaugment", "mixup"]
        );
    }

    #[test]
    fn baselines_train_as_documented() {
        let parse = |s: &str| ExperimentMethod::parse(s).unwrap();
        let (vanilla, mix) = parse("vanilla").training(32);
        assert!(vanilla.transforms.is_empty() && mix == BatchMix::None);
        let (classical, _) = parse("classical").training(32);
        assert!(matches!(
            classical.transforms.as_slice(),
            [Transform::Crop(c), Transform::Flip(_)] if c.padding == 4
        ));
        let (cutout, _) = parse("cutout").training(64);
        assert!(matches!(
            cutout.transforms.last(),
            Some(Transform::Cutout(c)) if c.size == 32
        ));
        assert!(matches!(parse("mixup").training(32).1, BatchMix::Mixup(_)));
        assert!(matches!(
            parse("cutmix").training(32).1,
            BatchMix::Cutmix(_)
        ));
        assert!(parse("perturb:delta=0.2").generative().is_some());
        assert!(parse("randaugment").generative().is_none());
        assert!(matches!(
            parse("classical:jitter").kind,
            MethodKind::Pipeline(_)
        ));
        let err = ExperimentMethod::parse("bogus").unwrap_err().to_string();
        assert!(
            err.contains("bogus") && err.contains("perturb") && err.contains("cutmix"),
            "{err}"
        );
    }
}
