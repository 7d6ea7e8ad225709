//! Experiment bookkeeping on hand-computed numbers: aggregation over seeds with the 95 %
//! t-interval, the area under accuracy-vs-shots by the trapezoid rule and its paired
//! gain over a baseline, and the tables `results.md` holds.

use semaug_eval::experiment::config::{ExperimentConfig, Kind};
use semaug_eval::experiment::report::{markdown, percent, table};
use semaug_eval::experiment::results::{
    aggregate, curve_area, curve_gains, DataRecord, Results, RunRecord, SetRecord, Timing,
    WallTime, SCHEMA,
};
use semaug_eval::metrics::{ConfusionMatrix, MeanInterval};

fn run(method: &str, point: Option<f64>, seed: u64, accuracy: f64) -> RunRecord {
    RunRecord {
        id: format!("{method}-{point:?}-{seed}"),
        method: method.into(),
        point,
        seed,
        accuracy,
        balanced_accuracy: accuracy / 2.0,
        eval_loss: 1.0,
        confusion: ConfusionMatrix::new(2),
        selected_epoch: 1,
        selection_accuracy: None,
        epochs: 1,
        steps: 1,
        train_images: 10,
        selection_images: 0,
        eval_images: 10,
        synthetic_fraction: 0.0,
        final_train_loss: 0.5,
        synthetic: None,
        seconds: Timing {
            generation: None,
            training: 10.0 * seed as f64,
            evaluation: 1.0,
        },
        settings_sha256: String::new(),
    }
}

fn results(config: ExperimentConfig, runs: Vec<RunRecord>) -> Results {
    let set = SetRecord {
        root: "data".into(),
        images: 10,
        origin: "test".into(),
        ids_sha256: String::new(),
    };
    let baseline = Some("classical");
    Results {
        schema: SCHEMA.into(),
        experiment: config.kind,
        aggregates: aggregate(&config, &runs),
        curve_gains: curve_gains(&config, &runs, baseline),
        data: DataRecord {
            classes: vec!["a".into(), "b".into()],
            train: set.clone(),
            eval: set,
            selection: config.selection.describe(),
        },
        config,
        generator: None,
        synthetic_dirs: Default::default(),
        versions: Default::default(),
        wall_seconds: WallTime::default(),
        runs,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Accuracies 0.70, 0.74, 0.72: mean 0.72, s = 0.02, half-width
/// t(0.975, 2) * 0.02 / sqrt(3) = 4.302653 * 0.011547 = 0.049683.
#[test]
fn aggregates_are_means_with_t_intervals_in_config_order() {
    let mut config = ExperimentConfig::new(Kind::Lowdata);
    config.methods = vec!["mixup".into(), "vanilla".into()];
    config.seeds = vec![0, 1, 2];
    let runs = vec![
        run("vanilla", None, 0, 0.5),
        run("mixup", None, 0, 0.70),
        run("mixup", None, 1, 0.74),
        run("mixup", None, 2, 0.72),
    ];
    let aggregates = aggregate(&config, &runs);
    assert_eq!(aggregates.len(), 2);
    let mixup = &aggregates[0];
    assert_eq!(mixup.method, "mixup", "the config's order, not the runs'");
    assert_eq!(mixup.seeds, vec![0, 1, 2]);
    assert!(close(mixup.accuracy.mean, 0.72));
    assert!(close(mixup.accuracy.std.unwrap(), 0.02));
    let half = mixup.accuracy.half_width.unwrap();
    assert!((half - 0.049_683).abs() < 1e-6, "{half}");
    assert!(close(mixup.balanced_accuracy.mean, 0.36));
    assert!(close(mixup.training_seconds.mean, 10.0));
    let vanilla = &aggregates[1];
    assert_eq!(vanilla.accuracy.n, 1);
    assert_eq!(vanilla.accuracy.half_width, None);
    // The table shows percent with one decimal, and a single seed without interval.
    assert_eq!(percent(&mixup.accuracy), "72.0 ± 5.0");
    assert_eq!(percent(&vanilla.accuracy), "50.0");
    let text = table(&results(config, runs));
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("| Method | Low-data accuracy (%)"),
        "{text}"
    );
    assert_eq!(rows[2], "| mixup | 72.0 ± 5.0 | 36.0 ± 2.5 | 3 | 10 |");
    assert_eq!(rows[3], "| vanilla | 50.0 | 25.0 | 1 | 0.0 |");
}

/// Trapezoids by hand. Linear x: (0,0), (1,1), (3,1) has area 0.5 + 2 = 2.5 over a
/// range of 3. log2 x: shots 1, 2, 4 sit at 0, 1, 2, so accuracies 0.2, 0.4, 0.8 give
/// (0.3 + 0.6) / 2 = 0.45.
#[test]
fn curve_area_is_the_mean_height_of_the_trapezoids() {
    let area = curve_area(&[(1.0, 1.0), (0.0, 0.0), (3.0, 1.0)], false).unwrap();
    assert!(close(area, 2.5 / 3.0), "{area}");
    let area = curve_area(&[(1.0, 0.2), (2.0, 0.4), (4.0, 0.8)], true).unwrap();
    assert!(close(area, 0.45), "{area}");
    assert_eq!(curve_area(&[(4.0, 0.3)], true), Some(0.3));
    assert_eq!(curve_area(&[], true), None);
    assert_eq!(
        curve_area(&[(0.0, 0.3), (1.0, 0.5)], true),
        None,
        "log of 0"
    );
}

/// Two seeds over shots 1, 2, 4. classical: seed 0 (0.2, 0.4, 0.8) area 0.45, seed 1
/// (0.3, 0.5, 0.7) area (0.4 + 0.6) / 2 = 0.5. ours: seed 0 (0.3, 0.5, 0.9) area 0.55,
/// seed 1 (0.3, 0.6, 0.7) area (0.45 + 0.65) / 2 = 0.55. Paired gains 0.10 and 0.05:
/// mean 0.075, s = 0.035355, half-width 12.706205 * 0.025 = 0.317655. A third method
/// missing shot 4 of seed 1 has one complete seed only.
#[test]
fn curve_gains_pair_seeds_against_the_baseline() {
    let mut config = ExperimentConfig::new(Kind::Fewshot);
    config.methods = vec!["classical".into(), "ours".into(), "partial".into()];
    config.seeds = vec![0, 1];
    config.points = vec![1.0, 2.0, 4.0];
    let mut runs = Vec::new();
    let curves = [
        ("classical", 0, [0.2, 0.4, 0.8]),
        ("classical", 1, [0.3, 0.5, 0.7]),
        ("ours", 0, [0.3, 0.5, 0.9]),
        ("ours", 1, [0.3, 0.6, 0.7]),
        ("partial", 0, [0.1, 0.1, 0.1]),
    ];
    for (method, seed, accs) in curves {
        for (k, acc) in [1.0, 2.0, 4.0].into_iter().zip(accs) {
            runs.push(run(method, Some(k), seed, acc));
        }
    }
    runs.push(run("partial", Some(1.0), 1, 0.9));
    let gains = curve_gains(&config, &runs, Some("classical"));
    assert_eq!(gains.len(), 3);
    let classical = &gains[0];
    assert!(close(classical.area.mean, 0.475));
    assert_eq!(classical.gain, None, "no gain over itself");
    let ours = &gains[1];
    assert!(close(ours.area.mean, 0.55));
    let gain: MeanInterval = ours.gain.unwrap();
    assert!(close(gain.mean, 0.075), "{gain:?}");
    assert!(
        (gain.half_width.unwrap() - 0.317_655).abs() < 1e-5,
        "{gain:?}"
    );
    assert_eq!(ours.baseline.as_deref(), Some("classical"));
    let partial = &gains[2];
    assert_eq!(partial.area.n, 1);
    assert!(close(partial.area.mean, 0.1));
    assert!(close(partial.gain.unwrap().mean, 0.1 - 0.45));
    // The few-shot table: methods down, shots across, then area and gain.
    let md = markdown(&results(config, runs));
    assert!(
        md.contains("| Method \\ shots | 1 | 2 | 4 | Area (%) | Gain over classical (points) |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| ours | 30.0 ± 0.0 | 55.0 ± 63.5 | 80.0 ± 127.1 | 55.0 ± 0.0 | +7.5 ± 31.8 |"
        ),
        "{md}"
    );
}

#[test]
fn ratio_table_labels_fractions_in_percent() {
    let mut config = ExperimentConfig::new(Kind::Ratio);
    config.methods = vec!["perturb".into()];
    config.seeds = vec![0];
    config.points = vec![0.0, 0.4];
    let runs = vec![
        run("perturb", Some(0.0), 0, 0.6),
        run("perturb", Some(0.4), 0, 0.65),
    ];
    let text = table(&results(config, runs));
    assert!(
        text.starts_with("| Method \\ synthetic | 0 % | 40 % |"),
        "{text}"
    );
    assert!(text.contains("| perturb | 60.0 | 65.0 |"), "{text}");
}
