//! Sharded augment runs into one folder end with the bytes of one unsharded run, whether
//! the shard comes from flags or from the cluster's array-job variables.

use std::path::Path;

use crate::common::{augment, cifar_subset, s, semaug_env, snapshot, METHODS};

const CLASSES: [&str; 3] = ["bird", "deer", "ship"];
/// 3 classes x 4 images x 2 methods x 2 per image.
const TOTAL: usize = 48;

fn unsharded(data: &Path, out: &Path, extra: &[&str]) {
    let mut args = extra.to_vec();
    args.extend(METHODS);
    augment(data, out, &args).assert_success();
}

#[test]
fn two_flag_shards_into_one_folder_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 4);
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    for index in ["0", "1"] {
        let mut args = vec!["--shard-index", index, "--num-shards", "2"];
        args.extend(METHODS);
        let outcome = augment(&data, &sharded, &args);
        outcome.assert_success();
        let expected = format!("wrote {} images", TOTAL / 2);
        assert!(outcome.stdout.contains(&expected), "{}", outcome.stdout);
    }
    unsharded(&data, &single, &[]);
    let (a, b) = (snapshot(&sharded), snapshot(&single));
    assert!(a.contains_key("metadata.jsonl"));
    assert_eq!(a.len(), TOTAL + 2, "images + metadata.jsonl + classes.json");
    assert_eq!(a, b);
}

#[test]
fn webdataset_shards_in_any_order_equal_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 4);
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    for index in ["2", "0", "1"] {
        let mut args = vec!["--format", "webdataset", "--shard-index", index];
        args.extend(["--num-shards", "3"]);
        args.extend(METHODS);
        augment(&data, &sharded, &args).assert_success();
    }
    unsharded(&data, &single, &["--format", "webdataset"]);
    let (a, b) = (snapshot(&sharded), snapshot(&single));
    assert!(a.keys().any(|k| k.ends_with(".tar")), "{:?}", a.keys());
    assert_eq!(a, b);
}

/// Runs one array task per `(task id, env)` into `out`; each must write its share.
fn array_job(data: &Path, out: &Path, tasks: &[&[(&str, &str)]]) {
    for env in tasks {
        let mut args = vec!["augment", "--data", s(data), "--out", s(out)];
        args.extend(METHODS);
        let outcome = semaug_env(&args, env);
        outcome.assert_success();
        let expected = format!("wrote {} images", TOTAL / tasks.len());
        assert!(
            outcome.stdout.contains(&expected),
            "{env:?}: {}",
            outcome.stdout
        );
    }
}

#[test]
fn slurm_array_variables_pick_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 4);
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    array_job(
        &data,
        &sharded,
        &[
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
            &[
                ("SLURM_ARRAY_TASK_ID", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
            ],
        ],
    );
    unsharded(&data, &single, &[]);
    assert_eq!(snapshot(&sharded), snapshot(&single));
}

#[test]
fn slurm_arrays_numbered_from_one_are_offset_by_their_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 4);
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    let task = |id| {
        [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]
    };
    array_job(&data, &sharded, &[&task("1"), &task("2")]);
    unsharded(&data, &single, &[]);
    assert_eq!(snapshot(&sharded), snapshot(&single));
}

#[test]
fn shard_flags_override_the_slurm_variables() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CLASSES, 4);
    let out = dir.path().join("out");
    let mut args = vec!["augment", "--data", s(&data), "--out", s(&out)];
    args.extend(["--shard-index", "0", "--num-shards", "1"]);
    args.extend(METHODS);
    let env = [
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
    ];
    let outcome = semaug_env(&args, &env);
    outcome.assert_success();
    let expected = format!("wrote {TOTAL} images");
    assert!(outcome.stdout.contains(&expected), "{}", outcome.stdout);
}
