//! `semaug augment` with the generative methods, run the way a user runs it, on the tiny
//! random-weight UNet fixture: every method writes a loadable dataset with complete
//! provenance; batch size, threads, kills and shards never change the bytes; inpainting
//! keeps the known region exactly; a missing model is a one-line usage error.

#![allow(clippy::unwrap_used)]

// The shared helpers serve several test targets; this one uses only some of them.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod fixture;

mod determinism;
mod errors;
mod inpaint;
mod judge;
mod methods;
mod resume;
mod shard;
