//! Shared helpers for the Stable Diffusion golden tests: the `sd-tiny` fixture, its case
//! tensors and `suggested_atol`s, and the comparison that prints the measured difference.
#![allow(dead_code)]

use std::path::PathBuf;

const FIXTURE: &str = "sd-tiny";

#[path = "../golden_common/mod.rs"]
mod golden;

#[allow(unused_imports)]
pub use golden::{atol, case_json, case_tensors, check, id_rows, max_abs_diff};

/// The diffusers `sd-tiny` fixture.
pub fn sd_tiny() -> PathBuf {
    golden::fixture_dir()
}
