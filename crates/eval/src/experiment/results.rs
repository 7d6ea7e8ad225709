//! What an experiment records: one [`RunRecord`] per (method, point, seed), their
//! [`Aggregate`]s (mean and 95 % t-interval over seeds), the few-shot area under the
//! accuracy-vs-shots curve and its gain over a baseline ([`CurveGain`]), and the whole
//! [`Results`] document written as `results.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::{ExperimentConfig, Kind};
use crate::metrics::{mean_interval, ConfusionMatrix, MeanInterval};

/// The `schema` field of `results.json`.
pub const SCHEMA: &str = "semaug-eval-results/1";

/// Wall-clock seconds of one run, by phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Making the run's synthetic set; `None` when it came from the cache or from
    /// `--synthetic` (the cache entry holds the time it took), or the method has none.
    pub generation: Option<f64>,
    pub training: f64,
    pub evaluation: f64,
}

/// Where a run's synthetic images came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticUse {
    /// The augmented ImageFolder.
    pub dir: String,
    /// True when the folder already existed (cache hit or `--synthetic`).
    pub reused: bool,
    /// Seconds it took to generate, when this experiment generated it.
    pub generation_seconds: Option<f64>,
    /// Synthetic images available to this run (variants of its training images).
    pub images: usize,
}

/// One trained and evaluated classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// File-safe id, unique within the experiment.
    pub id: String,
    pub method: String,
    /// Synthetic fraction (ratio) or shots per class (fewshot); `None` for lowdata.
    pub point: Option<f64>,
    pub seed: u64,
    /// Top-1 accuracy on the evaluation split, in [0, 1].
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub eval_loss: f64,
    pub confusion: ConfusionMatrix,
    /// The epoch scored (1-based) and its accuracy on the selection set, when the
    /// protocol selects.
    pub selected_epoch: usize,
    pub selection_accuracy: Option<f64>,
    pub epochs: usize,
    pub steps: u64,
    pub train_images: usize,
    pub selection_images: usize,
    pub eval_images: usize,
    /// Mean over epochs of the fraction of drawn samples that were synthetic.
    pub synthetic_fraction: f64,
    pub final_train_loss: f64,
    pub synthetic: Option<SyntheticUse>,
    pub seconds: Timing,
    /// Hash of every setting that decides this run besides method, point and seed; a
    /// stored run is reused only when it matches.
    pub settings_sha256: String,
}

/// Mean and interval over the seeds of one (method, point).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub method: String,
    pub point: Option<f64>,
    pub seeds: Vec<u64>,
    pub accuracy: MeanInterval,
    pub balanced_accuracy: MeanInterval,
    pub training_seconds: MeanInterval,
}

/// Few-shot: the area under a method's accuracy-vs-shots curve (see [`curve_area`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveGain {
    pub method: String,
    /// Over the seeds that have every shot count.
    pub area: MeanInterval,
    /// Paired per seed: this method's area minus the baseline's.
    pub gain: Option<MeanInterval>,
    pub baseline: Option<String>,
}

/// The experiment's data, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub classes: Vec<String>,
    /// Lowdata and ratio: the labeled training images (selection hold-out included).
    /// Fewshot: the pool the k-shot subsets are drawn from.
    pub train: SetRecord,
    pub eval: SetRecord,
    pub selection: String,
}

/// One image set: where it came from and a fingerprint of exactly which images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRecord {
    pub root: String,
    pub images: usize,
    /// How the set was obtained (e.g. "carved: 5 % of each class, seed 0").
    pub origin: String,
    /// sha256 of the sorted sample ids, one per line.
    pub ids_sha256: String,
}

/// Total wall time of the experiment's phases (this invocation's work only; reused
/// runs and cache hits add nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WallTime {
    pub generation: f64,
    pub training: f64,
    pub evaluation: f64,
    pub total: f64,
}

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub experiment: Kind,
    pub config: ExperimentConfig,
    pub data: DataRecord,
    /// The generator's description (name, weights sha256, ...), when one was used.
    pub generator: Option<serde_json::Value>,
    /// Augmented folders given with `--synthetic`, by method.
    pub synthetic_dirs: BTreeMap<String, String>,
    pub versions: BTreeMap<String, String>,
    pub wall_seconds: WallTime,
    pub runs: Vec<RunRecord>,
    pub aggregates: Vec<Aggregate>,
    pub curve_gains: Vec<CurveGain>,
}

/// Aggregates of `runs` in method order, then point order (as the config lists them).
pub fn aggregate(config: &ExperimentConfig, runs: &[RunRecord]) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for method in &config.methods {
        for point in config.run_points() {
            let mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| &r.method == method && r.point == point)
                .collect();
            let values = |f: fn(&RunRecord) -> f64| mine.iter().map(|r| f(r)).collect::<Vec<_>>();
            let (Ok(accuracy), Ok(balanced), Ok(seconds)) = (
                mean_interval(&values(|r| r.accuracy)),
                mean_interval(&values(|r| r.balanced_accuracy)),
                mean_interval(&values(|r| r.seconds.training)),
            ) else {
                continue; // no runs yet
            };
            out.push(Aggregate {
                method: method.clone(),
                point,
                seeds: mine.iter().map(|r| r.seed).collect(),
                accuracy,
                balanced_accuracy: balanced,
                training_seconds: seconds,
            });
        }
    }
    out
}

/// The mean height of the piecewise-linear curve through `points` (trapezoid rule,
/// divided by the x range) with x taken as `log2(x)` when `log2_x`: for shots
/// 1, 2, 4, 8, 16 each doubling weighs the same, as on the plot's log axis. Points are
/// sorted by x first; a single point is its own height; `None` without points or with
/// a non-positive x on a log axis.
pub fn curve_area(points: &[(f64, f64)], log2_x: bool) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .map(|&(x, y)| (if log2_x { x.log2() } else { x }, y))
        .collect();
    if pts.is_empty() || pts.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return None;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let range = pts[pts.len() - 1].0 - pts[0].0;
    if range == 0.0 {
        return Some(pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64);
    }
    let area: f64 = pts
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum();
    Some(area / range)
}

/// Per method: the area under accuracy vs shots for each seed that has every shot
/// count, its mean and interval, and the paired gain over `baseline` (seeds both have).
pub fn curve_gains(
    config: &ExperimentConfig,
    runs: &[RunRecord],
    baseline: Option<&str>,
) -> Vec<CurveGain> {
    let areas: Vec<(String, BTreeMap<u64, f64>)> = config
        .methods
        .iter()
        .map(|m| (m.clone(), seed_areas(config, runs, m)))
        .collect();
    let base = baseline.and_then(|b| areas.iter().find(|(m, _)| m == b));
    areas
        .iter()
        .filter_map(|(method, by_seed)| {
            let values: Vec<f64> = by_seed.values().copied().collect();
            let area = mean_interval(&values).ok()?;
            let gain = base.filter(|(b, _)| b != method).and_then(|(_, base)| {
                let diffs: Vec<f64> = by_seed
                    .iter()
                    .filter_map(|(seed, a)| base.get(seed).map(|b| a - b))
                    .collect();
                mean_interval(&diffs).ok()
            });
            Some(CurveGain {
                method: method.clone(),
                area,
                baseline: gain.map(|_| baseline.unwrap_or_default().to_owned()),
                gain,
            })
        })
        .collect()
}

fn seed_areas(config: &ExperimentConfig, runs: &[RunRecord], method: &str) -> BTreeMap<u64, f64> {
    let mut out = BTreeMap::new();
    for &seed in &config.seeds {
        let points: Vec<(f64, f64)> = config
            .points
            .iter()
            .filter_map(|&k| {
                runs.iter()
                    .find(|r| r.method == method && r.seed == seed && r.point == Some(k))
                    .map(|r| (k, r.accuracy))
            })
            .collect();
        if points.len() == config.points.len() {
            if let Some(area) = curve_area(&points, true) {
                out.insert(seed, area);
            }
        }
    }
    out
}
