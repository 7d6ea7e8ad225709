//! A whole experiment on synthetic separable data written as ImageFolders: it learns
//! (> 95 % on the evaluation split), writes results.json / results.md / results.png that
//! parse, skips finished runs when run again, refuses changed settings, and the
//! few-shot variant reports curves and areas.

mod common;

use std::path::Path;
use std::sync::Mutex;

use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_eval::experiment::{
    Event, Experiment, ExperimentConfig, ExperimentData, ExperimentError, Kind, Observer, Results,
    Selection,
};
use semaug_eval::TrainConfig;

use common::striped_image;

/// `per_class` 16x16 images of each of the 4 striped classes under `dir/<class>/`.
fn write_folder(dir: &Path, per_class: usize, seed: u64) {
    for class in 0..4 {
        let folder = dir.join(format!("class{class}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let mut rng = semaug_core::seeds::Stream::new(seed, (i * 4 + class) as u64, 0, 0);
            let image = striped_image(class, 16, &mut rng);
            image.save(folder.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

fn data(root: &Path) -> ExperimentData {
    let open = |name: &str| open_dataset(&root.join(name), &OpenOptions::default()).unwrap();
    ExperimentData::new(
        open("train"),
        open("eval"),
        "generated train",
        "generated eval",
    )
    .unwrap()
}

/// A narrow ResNet-20 with the trainer's quick test recipe.
fn quick(kind: Kind) -> ExperimentConfig {
    let mut config = ExperimentConfig::new(kind);
    config.width = Some(8);
    config.train = TrainConfig {
        epochs: 6,
        batch_size: 32,
        lr: 0.05,
        warmup_epochs: 1,
        ..TrainConfig::default()
    };
    config
}

/// Counts what the experiment reported.
#[derive(Default)]
struct Counter {
    fresh: Mutex<usize>,
    reused: Mutex<usize>,
    steps: Mutex<u64>,
}

impl Observer for Counter {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::RunFinished { reused: true, .. } => *self.reused.lock().unwrap() += 1,
            Event::RunFinished { reused: false, .. } => *self.fresh.lock().unwrap() += 1,
            Event::Step { .. } => *self.steps.lock().unwrap() += 1,
            _ => {}
        }
    }
}

fn run(
    config: &ExperimentConfig,
    root: &Path,
    out: &Path,
) -> (Result<Results, ExperimentError>, Counter) {
    let counter = Counter::default();
    let mut experiment = Experiment {
        config: config.clone(),
        data: data(root),
        out: out.to_owned(),
        source: None,
        synthetic_dir: None,
    };
    (experiment.run(&counter), counter)
}

#[test]
fn lowdata_learns_writes_results_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("train"), 60, 1);
    write_folder(&dir.path().join("eval"), 25, 2);
    let out = dir.path().join("out");
    let mut config = quick(Kind::Lowdata);
    config.methods = vec!["classical".into()];
    config.seeds = vec![0];
    let (results, counter) = run(&config, dir.path(), &out);
    let results = results.unwrap();
    assert_eq!(*counter.fresh.lock().unwrap(), 1);
    // 10 % of 60 per class held out: 216 training images, 7 steps of 32 per epoch.
    let record = &results.runs[0];
    assert_eq!((record.train_images, record.selection_images), (216, 24));
    assert_eq!(record.eval_images, 100);
    assert_eq!(*counter.steps.lock().unwrap(), 6 * 7);
    assert!(record.accuracy > 0.95, "accuracy {}", record.accuracy);
    assert_eq!(record.confusion.total(), 100);
    assert_eq!(record.confusion.accuracy(), Some(record.accuracy));
    assert!(record.selection_accuracy.is_some());
    assert!(record.seconds.training > 0.0 && record.seconds.generation.is_none());
    assert_eq!(results.aggregates.len(), 1);
    assert_eq!(results.aggregates[0].accuracy.mean, record.accuracy);

    // The files parse and say the same.
    let json: Results =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json, results);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let row = format!("| classical | {:.1} |", 100.0 * record.accuracy);
    assert!(md.contains(&row), "{md}");
    assert!(md.contains("held out of the training images"), "{md}");
    let png = image::open(out.join("results.png")).unwrap();
    assert_eq!((png.width(), png.height()), (800, 500));
    assert!(
        !out.join("checkpoints").join(&record.id).exists(),
        "checkpoints removed"
    );

    // Again with one more method: the finished run is reused, only the new one trains.
    config.methods.insert(0, "vanilla".into());
    let (again, counter) = run(&config, dir.path(), &out);
    let again = again.unwrap();
    assert_eq!(*counter.reused.lock().unwrap(), 1);
    assert_eq!(*counter.fresh.lock().unwrap(), 1);
    let reused = again.runs.iter().find(|r| r.method == "classical").unwrap();
    assert_eq!(reused, record);
    assert_eq!(again.aggregates[0].method, "vanilla", "config order");

    // Changed training settings are refused, not mixed into one table.
    config.train.epochs = 5;
    let (changed, _) = run(&config, dir.path(), &out);
    let err = changed.unwrap_err();
    assert!(
        matches!(err, ExperimentError::SettingsChanged { .. }),
        "{err}"
    );
}

#[test]
fn fewshot_reports_curves_and_areas() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("train"), 12, 3);
    write_folder(&dir.path().join("eval"), 10, 4);
    let out = dir.path().join("out");
    let mut config = quick(Kind::Fewshot);
    config.methods = vec!["vanilla".into(), "classical".into()];
    config.seeds = vec![0, 1];
    config.points = vec![1.0, 4.0];
    config.min_steps = 12;
    config.train.epochs = 2;
    let (results, counter) = run(&config, dir.path(), &out);
    let results = results.unwrap();
    assert_eq!(results.runs.len(), 8);
    assert_eq!(*counter.fresh.lock().unwrap(), 8);
    for r in &results.runs {
        let k = r.point.unwrap() as usize;
        assert_eq!(r.train_images, 4 * k, "{r:?}");
        assert_eq!(r.selection_images, 0, "few-shot keeps the last epoch");
        // 1 step per epoch (4 or 16 images, batch 32): epochs grow to 12 steps.
        assert_eq!((r.epochs, r.steps), (12, 12), "{r:?}");
        assert_eq!(r.selected_epoch, 12);
    }
    assert_eq!(results.aggregates.len(), 4);
    assert_eq!(results.curve_gains.len(), 2);
    let vanilla = &results.curve_gains[0];
    assert_eq!(vanilla.area.n, 2);
    assert_eq!(vanilla.baseline.as_deref(), Some("classical"));
    assert!(results.curve_gains[1].gain.is_none());
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| Method \\ shots | 1 | 4 | Area (%) |"),
        "{md}"
    );
    image::open(out.join("results.png")).unwrap();
}

/// DA-Fusion's protocol: the evaluation split picks the epoch, so the selection
/// accuracy is the reported accuracy, every training image is trained on, and the
/// report says which protocol it was.
#[test]
fn selection_on_the_evaluation_split_is_labelled() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("train"), 10, 5);
    write_folder(&dir.path().join("eval"), 10, 6);
    let out = dir.path().join("out");
    let mut config = quick(Kind::Lowdata);
    config.methods = vec!["vanilla".into()];
    config.seeds = vec![3];
    config.train.epochs = 3;
    config.selection = Selection::EvalSplit;
    let results = run(&config, dir.path(), &out).0.unwrap();
    let r = &results.runs[0];
    assert_eq!((r.train_images, r.selection_images), (40, 0));
    assert_eq!(r.selection_accuracy, Some(r.accuracy));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("DA-Fusion protocol"), "{md}");
}
