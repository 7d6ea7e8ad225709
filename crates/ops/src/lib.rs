//! semaug-ops: the augmentation methods and the run that applies them to a dataset.
//!
//! Principal types: [`spec::MethodSpec`] (the text grammar of `--method`). Key decision:
//! every output is planned up front with its own seed stream, so the bytes of a run do
//! not depend on batching, threads, sharding or interruptions.

pub mod augment;
pub mod demo;
pub mod generative;
pub mod method;
pub mod method_file;
pub mod plan;
pub mod reconstruct;
pub mod sample;
pub mod spec;
