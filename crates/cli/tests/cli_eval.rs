//! `semaug eval lowdata` run the way a user runs it: two classical methods and one
//! generative method with the tiny random-weight UNet, on a small CIFAR ImageFolder.
//! The results files exist and parse, the synthetic set is cached under the output
//! folder, a rerun skips every finished run, changed settings are refused, and bad
//! arguments are usage errors.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{s, semaug, sorted_names};
use semaug_eval::experiment::Results;

/// CIFAR classes copied into folders named like the tiny model's classes.
const SOURCES: [(&str, &str); 3] = [("0", "airplane"), ("1", "cat"), ("2", "ship")];

/// `per_class` CIFAR images in each of the folders `0`, `1`, `2` under `dir/data`.
fn dataset(dir: &Path, per_class: usize) -> PathBuf {
    let data = dir.join("data");
    let cifar = semaug_testdata::cifar10_train();
    for (folder, class) in SOURCES {
        let to = data.join(folder);
        fs::create_dir_all(&to).unwrap();
        for name in sorted_names(&cifar.join(class)).into_iter().take(per_class) {
            fs::copy(cifar.join(class).join(&name), to.join(&name)).unwrap();
        }
    }
    data
}

fn model() -> String {
    let dir = semaug_testdata::fixtures_dir().join("unet2d-tiny/unet");
    dir.to_str().unwrap().to_owned()
}

/// 8 images per class: 4 labeled (1 held out for selection), 3 for evaluation.
fn lowdata<'a>(data: &'a str, out: &'a str, model: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "eval",
        "lowdata",
        "--data",
        data,
        "--fraction",
        "0.5",
        "--val-per-class",
        "3",
        "--methods",
        "vanilla,classical,perturb:delta=0.3",
        "--model",
        model,
        "--steps",
        "2",
        "--solver",
        "euler",
        "--epochs",
        epochs,
        "--batch",
        "4",
        "--seeds",
        "2",
        "--width",
        "4",
        "--selection",
        "holdout:0.25",
        "--out",
        out,
    ]
}

fn results(out: &Path) -> Results {
    serde_json::from_slice(&fs::read(out.join("results.json")).unwrap()).unwrap()
}

#[test]
fn lowdata_writes_results_caches_synthetic_images_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 8);
    let out = dir.path().join("out");
    let model = model();
    let first = semaug(&lowdata(s(&data), s(&out), &model, "2"));
    first.assert_success();
    assert!(
        first.stdout.contains("runs: 6 trained now, 0 reused"),
        "{}",
        first.stdout
    );

    let r = results(&out);
    assert_eq!(r.runs.len(), 6, "3 methods x 2 seeds");
    assert_eq!(r.aggregates.len(), 3);
    assert_eq!(r.data.train.images, 12);
    assert_eq!(r.data.eval.images, 9);
    for run in &r.runs {
        assert_eq!((run.train_images, run.selection_images), (9, 3), "{run:?}");
        assert_eq!(run.confusion.total(), 9);
        assert!((0.0..=1.0).contains(&run.accuracy));
    }
    let generative: Vec<_> = r.runs.iter().filter(|r| r.synthetic.is_some()).collect();
    assert_eq!(generative.len(), 2);
    let synthetic = generative[0].synthetic.as_ref().unwrap();
    assert_eq!(synthetic.images, 9, "one variant per training image");
    // One cached set serves both seeds; its folder holds a manifest of 9 outputs.
    assert_eq!(generative[1].synthetic.as_ref().unwrap().dir, synthetic.dir);
    let manifest = fs::read_to_string(Path::new(&synthetic.dir).join("metadata.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 9);
    let sha = r.generator.as_ref().unwrap()["weights_sha256"]
        .as_str()
        .unwrap();
    assert_eq!(sha.len(), 64);

    let md = fs::read_to_string(out.join("results.md")).unwrap();
    for method in [
        "vanilla",
        "classical",
        "perturb:delta=0.3,steps=2,solver=euler",
    ] {
        assert!(md.contains(&format!("| {method} |")), "{md}");
        assert!(
            first.stdout.contains(&format!("| {method} |")),
            "{}",
            first.stdout
        );
    }
    let png = image::open(out.join("results.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);

    // The same command again: nothing is trained or generated, the runs are the same.
    let again = semaug(&lowdata(s(&data), s(&out), &model, "2"));
    again.assert_success();
    assert!(
        again.stdout.contains("runs: 0 trained now, 6 reused"),
        "{}",
        again.stdout
    );
    assert_eq!(results(&out).runs, r.runs);

    // `--synthetic` takes the images from an existing augmented folder instead.
    let reuse = dir.path().join("reuse");
    let mut args = lowdata(s(&data), s(&reuse), &model, "2");
    let methods = args
        .iter()
        .position(|a| *a == "vanilla,classical,perturb:delta=0.3");
    args[methods.unwrap()] = "perturb:delta=0.3";
    let seeds = args.iter().position(|a| *a == "--seeds").unwrap();
    args[seeds + 1] = "1";
    args.extend(["--synthetic", synthetic.dir.as_str()]);
    semaug(&args).assert_success();
    let used = results(&reuse).runs[0].synthetic.clone().unwrap();
    assert_eq!((used.images, used.reused), (9, true));
    assert_eq!(used.generation_seconds, None);
    assert!(!reuse.join("synthetic").exists(), "nothing generated");
    args[methods.unwrap()] = "perturb:delta=0.5";
    let other = semaug(&args);
    let line = other.assert_error_line(1);
    assert!(line.contains("no outputs of method `perturb`"), "{line}");

    // Other training settings into the same folder: refused in one line.
    let changed = semaug(&lowdata(s(&data), s(&out), &model, "1"));
    let line = changed.assert_error_line(1);
    assert!(line.contains("other settings"), "{line}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 2);
    let out = dir.path().join("out");
    let bogus = semaug(&[
        "eval",
        "lowdata",
        "--data",
        s(&data),
        "--methods",
        "bogus",
        "--out",
        s(&out),
    ]);
    let line = bogus.assert_error_line(2);
    assert!(line.contains("bogus") && line.contains("cutmix"), "{line}");
    let arch = semaug(&[
        "eval",
        "lowdata",
        "--data",
        s(&data),
        "--arch",
        "vgg",
        "--out",
        s(&out),
    ]);
    assert!(arch.assert_error_line(2).contains("--arch vgg"));
    let train = semaug(&["eval", "lowdata", "--train", s(&data), "--out", s(&out)]);
    assert!(train.assert_error_line(2).contains("--eval-data"));
    assert!(!out.join("results.json").exists());
}
