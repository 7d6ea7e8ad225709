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
//! (to be measured)

pub mod carve;
pub mod config;
pub mod data;
pub mod error;
pub mod methods;
pub mod report;
pub mod results;
pub mod runner;
pub mod synthetic;

pub use carve::{carve, CarveSpec, Carved, Labeled};
pub use config::{ExperimentConfig, Kind, Selection, SyntheticPlan};
pub use data::ExperimentData;
pub use error::ExperimentError;
pub use methods::{split_methods, ExperimentMethod, BASELINES};
pub use results::{curve_area, Aggregate, CurveGain, Results, RunRecord};
pub use runner::{Event, Experiment, Observer, Silent};
pub use synthetic::{FixedGenerator, SyntheticSource};
