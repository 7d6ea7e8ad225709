//! Shared helpers for the Stable Diffusion 3 golden tests: the `sd3-tiny` fixture, its case
//! tensors and `suggested_atol`s, and the comparison that prints the measured difference.
#![allow(dead_code)]

use std::path::PathBuf;

const FIXTURE: &str = "sd3-tiny";

#[path = "../golden_common/mod.rs"]
mod golden;

#[allow(unused_imports)]
pub use golden::{atol, case_json, case_tensors, check, id_rows, max_abs_diff};

/// The diffusers `sd3-tiny` fixture.
pub fn sd3_tiny() -> PathBuf {
    golden::fixture_dir()
}
