//! semaug-data: images in and out, datasets, masks, classical augmentations, writers.
//!
//! Principal types: [`image_io::Limits`] and the one decode function every image goes
//! through. Key decision: inputs are never written to, and every output file is
//! published by write-to-temp + rename, so a crash never leaves a partial file.

pub mod augment;
pub mod dataset;
pub mod image_io;
pub mod mask;
pub mod plot;
pub mod writer;
