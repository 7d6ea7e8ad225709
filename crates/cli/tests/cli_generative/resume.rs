//! A generative run killed (SIGKILL) part-way and run again ends with the bytes of a run
//! that was never interrupted, leaves no temp files, and redoes only what was missing.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{s, snapshot};
use crate::fixture::{augment, dataset, model_arg, temp_files};

const CLASSES: [&str; 3] = ["0", "1", "2"];
/// 3 classes x 2 images x 2 per image, one output per batch: many small steps to
/// interrupt.
const TOTAL: usize = 12;
const ARGS: [&str; 10] = [
    "--method",
    "perturb:delta=0.3",
    "--per-image",
    "2",
    "--batch",
    "1",
    "--steps",
    "4",
    "--solver",
    "euler",
];
/// Cluster variables that would shard the child behind the test's back.
const SHARD_VARS: [&str; 4] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "JOB_COMPLETION_INDEX",
];

fn spawn(data: &Path, out: &Path) -> Child {
    let model = model_arg();
    let mut command = Command::new(env!("CARGO_BIN_EXE_semaug"));
    command.args(["augment", "--quiet", "--data", s(data), "--out", s(out)]);
    command.args(["--model", &model]).args(ARGS);
    for var in SHARD_VARS {
        command.env_remove(var);
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command.spawn().expect("start semaug")
}

/// Finished outputs: record sidecars under `.semaug/records/` (temp files excluded).
fn records_done(out: &Path) -> usize {
    match fs::read_dir(out.join(".semaug/records")) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".json") && !name.starts_with('.')
            })
            .count(),
        Err(_) => 0,
    }
}

/// Polls until `at_least` outputs are done, then SIGKILLs the child and reaps it (so its
/// pid is dead and its temp files count as abandoned). Returns the outputs done after
/// the kill.
fn kill_after(mut child: Child, out: &Path, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    while records_done(out) < at_least {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("semaug ended ({status}) before {at_least} outputs were done");
        }
        assert!(Instant::now() < deadline, "no progress within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    records_done(out)
}

#[test]
fn killed_run_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &CLASSES, 2);
    let (out, reference) = (dir.path().join("out"), dir.path().join("reference"));

    let done = kill_after(spawn(&data, &out), &out, 2);
    assert!(
        (2..TOTAL).contains(&done),
        "{done} of {TOTAL} outputs done at the kill: it did not interrupt the run"
    );
    assert!(
        !out.join("metadata.jsonl").exists(),
        "manifest before the end"
    );

    let resumed = augment(&data, &out, &ARGS);
    resumed.assert_success();
    let expected = format!("wrote {} images ({done} already done", TOTAL - done);
    assert!(resumed.stdout.contains(&expected), "{}", resumed.stdout);

    augment(&data, &reference, &ARGS).assert_success();
    let (a, b) = (snapshot(&out), snapshot(&reference));
    assert_eq!(a.len(), TOTAL + 2, "images + metadata.jsonl + classes.json");
    assert_eq!(a, b, "the resumed folder differs from an uninterrupted run");
    assert_eq!(temp_files(&out), Vec::<std::path::PathBuf>::new());
}
