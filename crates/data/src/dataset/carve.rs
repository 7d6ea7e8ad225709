//! Carving a labeled dataset into a class-balanced labeled subset (a fraction or k per
//! class, by seed), a validation split of `val_per_class` per class drawn from the rest,
//! and the rest as the unlabeled pool. `semaug split` writes these parts to disk and
//! `semaug eval` trains and evaluates on them, both through [`carve`].
//!
//! For CIFAR-10 with fraction 0.05, 500 validation images per class and seed 0 this is
//! exactly the subset the shipped generator saw labels for and the split it never saw
//! (`data/splits/cifar10/*.txt`), so no label outside the 5 % reaches a classifier.

use serde::{Deserialize, Serialize};

use super::{Dataset, DatasetError};

/// How many images of each class keep their label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Labeled {
    /// `round(fraction * n_c)` of each class.
    Fraction(f64),
    /// `k` of each class.
    Shots(usize),
}

/// The settings of one carving.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CarveSpec {
    pub labeled: Labeled,
    /// Validation images per class, drawn from outside the labeled subset (0: none).
    pub val_per_class: usize,
    pub seed: u64,
    /// Take all images of a class that has fewer than asked, instead of failing.
    pub lenient: bool,
}

impl Default for CarveSpec {
    /// `semaug split`'s defaults: 5 %, 500 validation images per class, seed 0.
    fn default() -> Self {
        Self {
            labeled: Labeled::Fraction(0.05),
            val_per_class: 500,
            seed: 0,
            lenient: false,
        }
    }
}

/// The three disjoint parts of a carved dataset.
#[derive(Debug, Clone)]
pub struct Carved {
    pub labeled: Dataset,
    pub val: Dataset,
    pub pool: Dataset,
}

/// Splits `data` into labeled subset, validation split and pool (see the module doc).
pub fn carve(data: &Dataset, spec: &CarveSpec) -> Result<Carved, DatasetError> {
    let labeled = match spec.labeled {
        Labeled::Shots(k) => data.subset_k_shot(k, spec.seed, spec.lenient)?,
        Labeled::Fraction(f) => data.subset_fraction(f, spec.seed)?,
    };
    let rest = data.exclude(labeled.ids());
    let val = if spec.val_per_class > 0 {
        rest.subset_k_shot(spec.val_per_class, spec.seed, spec.lenient)?
    } else {
        rest.filter(|_| false)
    };
    let pool = rest.exclude(val.ids());
    Ok(Carved { labeled, val, pool })
}
