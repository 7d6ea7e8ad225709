//! The `semaug` binary on real images, run the way a user runs it: `info`, `augment`
//! (formats, determinism, resume, shards), bad inputs (exit codes and one-line errors
//! naming the file), usage errors, and `split`. Each submodule owns one of these.

#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod augment;
mod bad_input;
mod info;
mod method_file;
mod shard;
mod split;
mod train;
mod usage;
