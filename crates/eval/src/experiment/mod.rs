//! The paper's experiments (section 4) as library calls: low-data classification
//! (Table 1), accuracy against the synthetic fraction (Figure 2) and few-shot
//! accuracy against shots (Figures 3 and 6).
//!
//! Principal types: [`ExperimentConfig`] (methods, seeds, points, classifier, training
//! recipe, model selection, synthetic plan, as serde data), [`ExperimentData`] (training
//! and evaluation sets; [`carve`] cuts them like `semaug split`), [`Experiment`] (runs
//! every (method, point, seed), resumably) and [`Results`] (`results.json`; also
//! `results.md` and `results.png`). Generative methods get their synthetic images from a
//! [`SyntheticSource`] through `semaug_ops::augment::run`, cached under the output
//! folder, or from an existing augmented folder.
//!
//! Key decision: model selection never looks at the evaluation split unless asked to
//! ([`Selection::EvalSplit`], DA-Fusion's protocol, labelled as such in every output);
//! by default 10 % of each class of the training images is held out for it (few-shot
//! keeps the last epoch: one image per class cannot be split).
//!
//! # CPU budget
//!
//! Measured with `semaug eval lowdata` on CIFAR-10 (release build, 2 cores shared with
//! other niced jobs, load average 5-9, so a quiet machine is faster):
//!
//! - one ResNet-20 epoch over the 5 % subset: about 12 s (2,250 training images at batch
//!   128 plus validation on the 250 held out; 2,500 images without hold-out: 13 s);
//! - evaluation on the 5,000-image validation split: about 6 s per run;
//! - synthetic images with the shipped generator (defaults: Heun, 20 steps):
//!   `perturb:delta=0.3` about 1.7 s per image (invert + regenerate), `splice:strength=0.5`
//!   (guidance 2) about 0.7 s per image, i.e. about 63 and 28 minutes for the 2,250
//!   training images, made once and reused by every seed and every rerun.
//!
//! A default `semaug eval lowdata` (6 classical methods x 5 seeds x 30 epochs = 30 runs
//! of about 6 minutes) costs about 3 hours; each generative method adds 5 runs (about
//! 30 minutes) plus its one-off generation.

pub mod config;
pub mod data;
pub mod error;
pub mod methods;
pub mod report;
pub mod results;
pub mod runner;
pub mod synthetic;

pub use config::{ExperimentConfig, Kind, Selection, SyntheticPlan};
pub use data::ExperimentData;
pub use error::ExperimentError;
pub use methods::{split_methods, ExperimentMethod, BASELINES};
pub use results::{curve_area, Aggregate, CurveGain, Results, RunRecord};
pub use runner::{Event, Experiment, Observer, Silent};
pub use semaug_data::dataset::{carve, CarveSpec, Carved, Labeled};
pub use synthetic::{FixedGenerator, SyntheticSource};
