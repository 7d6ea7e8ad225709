//! `semaug split`: labeled / val / pool folders of the asked sizes, disjoint, covering
//! the input, holding the input's bytes, and the same ids for the same seed.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use semaug_data::dataset::{open_dataset, OpenOptions, IDS_FILE};

use crate::common::{cifar_subset, s, semaug};

const CLASSES: [&str; 3] = ["bird", "deer", "ship"];
const PER_CLASS: usize = 6;

fn split(data: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["split", "--data", s(data), "--out", s(out)];
    args.extend_from_slice(extra);
    semaug(&args).assert_success();
}

fn ids(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(IDS_FILE))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn class_counts(dir: &Path) -> Vec<usize> {
    open_dataset(dir, &OpenOptions::default())
        .unwrap()
        .class_counts()
}

#[test]
fn shots_split_writes_disjoint_parts_of_the_right_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, PER_CLASS);
    let out = dir.path().join("split");
    let args = [
        "--shots",
        "2",
        "--val-per-class",
        "1",
        "--pool",
        "--seed",
        "4",
    ];
    split(&data, &out, &args);

    let (labeled, val, pool) = (out.join("labeled"), out.join("val"), out.join("pool"));
    assert_eq!(class_counts(&labeled), [2, 2, 2]);
    assert_eq!(class_counts(&val), [1, 1, 1]);
    let pool_data = open_dataset(&pool, &OpenOptions::default()).unwrap();
    assert!(pool_data.classes.is_empty(), "the pool kept labels");
    assert_eq!(pool_data.len(), 9);

    let parts = [ids(&labeled), ids(&val), ids(&pool)];
    assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [6, 3, 9]);
    let all: HashSet<&String> = parts.iter().flatten().collect();
    assert_eq!(all.len(), 18, "the parts overlap");
    let input = open_dataset(&data, &OpenOptions::default()).unwrap();
    let input_ids: HashSet<&String> = input.samples.iter().map(|s| &s.id).collect();
    assert_eq!(all, input_ids, "the parts do not cover the input");

    // Labeled and val images keep their path and bytes.
    for (part, dir) in [(&parts[0], &labeled), (&parts[1], &val)] {
        for id in part {
            assert_eq!(
                fs::read(dir.join(id)).unwrap(),
                fs::read(data.join(id)).unwrap()
            );
        }
    }
}

#[test]
fn fraction_split_takes_that_share_of_each_class() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, PER_CLASS);
    let out = dir.path().join("split");
    split(&data, &out, &["--fraction", "0.5", "--val-per-class", "2"]);
    assert_eq!(class_counts(&out.join("labeled")), [3, 3, 3]);
    assert_eq!(class_counts(&out.join("val")), [2, 2, 2]);
    assert!(!out.join("pool").exists(), "pool written without --pool");
}

#[test]
fn same_seed_gives_the_same_ids_and_another_seed_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, PER_CLASS);
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let args = [
            "--shots",
            "2",
            "--val-per-class",
            "2",
            "--pool",
            "--seed",
            seed,
        ];
        split(&data, &out, &args);
        ["labeled", "val", "pool"].map(|part| ids(&out.join(part)))
    };
    let (a, b, other) = (run("a", "11"), run("b", "11"), run("c", "12"));
    assert_eq!(a, b);
    assert_ne!(a[0], other[0], "the labeled draw ignores the seed");
}

#[test]
fn split_into_a_non_empty_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 3);
    let out = dir.path().join("split");
    fs::create_dir_all(out.join("labeled")).unwrap();
    fs::write(out.join("labeled/notes.txt"), "mine").unwrap();
    let outcome = semaug(&[
        "split",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--shots",
        "1",
        "--val-per-class",
        "1",
    ]);
    let line = outcome.assert_error_line(1);
    assert!(line.contains(s(&out.join("labeled"))), "{line}");
    assert_eq!(
        fs::read_to_string(out.join("labeled/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn too_few_images_error_suggests_only_existing_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 3);
    let out = dir.path().join("split");
    let args = [
        "split",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--shots",
        "5",
    ];
    let line = semaug(&args).assert_error_line(1).to_owned();
    assert!(line.contains("fewer than"), "{line}");
    let help = semaug(&["split", "--help"]);
    for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
        let flag = flag.trim_end_matches(|c: char| !c.is_alphanumeric());
        assert!(
            help.stdout.contains(flag),
            "suggests missing {flag}: {line}"
        );
    }
}
