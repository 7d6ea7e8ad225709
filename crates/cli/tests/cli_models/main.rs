//! `--model` beyond the embedded default, run the way a user runs it: diffusers pipeline
//! folders (the tiny SD 1.x and SD3 fixtures), hub ids read from a local Hugging Face
//! cache (and `semaug models` listing it), broken weights files refused with one line
//! before anything is written, textual inversion for Stable Diffusion feeding `augment`,
//! and the flags that only make sense for some models.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod corrupt;
mod dtype;
mod hub_cache;
mod pipelines;

use std::fs;
use std::path::{Path, PathBuf};

/// A fixture folder under `../shared/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    semaug_testdata::fixtures_dir().join(name)
}

/// An ImageFolder at `dir/data` with one bundled demo photo in each of `classes`.
pub fn photos(dir: &Path, classes: &[&str]) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo");
    let data = dir.join("data");
    for class in classes {
        fs::create_dir_all(data.join(class)).unwrap();
        fs::copy(
            assets.join(format!("{class}.jpg")),
            data.join(class).join("0.jpg"),
        )
        .unwrap();
    }
    data
}

/// Two Euler steps: enough to run every stage of a pipeline.
pub const FAST: [&str; 4] = ["--steps", "2", "--solver", "euler"];
