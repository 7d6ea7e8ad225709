//! `semaug augment` as a library call: dataset in, augmented dataset out.
//!
//! The run plans every output ([`crate::plan`]), skips the ones the writer already
//! holds (a resumed run), makes the rest and hands each to the writer, which publishes
//! it atomically; `finish` then writes the manifest. Outputs depend only on the plan, so
//! an interrupted and resumed run, a sharded run, and runs with any thread count end
//! with the same bytes.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use semaug_data::dataset::{Dataset, DatasetError, Sample, Skipped, Source};
use semaug_data::image_io::{decode_bytes, ImageError, Limits};
use semaug_data::writer::{DatasetWriter, Format, Record, WriterError};

use crate::method::Method;
use crate::plan::{job_stream, method_tags, plan, Job, Shard};

/// Everything that decides what an augment run writes.
#[derive(Debug, Clone)]
pub struct AugmentConfig {
    pub methods: Vec<Method>,
    pub per_image: usize,
    pub seed: u64,
    pub format: Format,
    pub shard: Shard,
    /// Skip and record unreadable sources instead of stopping.
    pub lenient: bool,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AugmentReport {
    pub planned: usize,
    pub already_done: usize,
    pub written: usize,
    pub skipped: Vec<Skipped>,
    /// Records in the manifest after `finish` (all shards that finished so far).
    pub records: usize,
}

impl AugmentConfig {
    fn validate(&self) -> Result<(), AugmentError> {
        if self.methods.is_empty() {
            return Err(AugmentError::Config("give at least one --method".into()));
        }
        if self.per_image == 0 {
            return Err(AugmentError::Config(
                "--per-image must be at least 1".into(),
            ));
        }
        if self.shard.count == 0 || self.shard.index >= self.shard.count {
            return Err(AugmentError::Config(format!(
                "shard index {} is outside 0..{} (--shard-index must be below --num-shards)",
                self.shard.index, self.shard.count
            )));
        }
        Ok(())
    }

    /// The settings fingerprint the writer stores: a resumed run must match it. It
    /// leaves out the shard, so all shards of one run share an output folder.
    fn fingerprint(&self, dataset: &Dataset) -> serde_json::Value {
        serde_json::json!({
            "command": "augment",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "methods": self.methods.iter().map(Method::params).collect::<Vec<_>>(),
            "per_image": self.per_image,
            "seed": self.seed,
            "classes": dataset.classes,
            "samples": dataset.samples.len(),
        })
    }
}

/// Run (or resume) the augmentation of `dataset` into `out`; `progress` is called with
/// the number of outputs finished since the last call.
pub fn run(
    dataset: &Dataset,
    config: &AugmentConfig,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<AugmentReport, AugmentError> {
    config.validate()?;
    let writer = DatasetWriter::open(
        out,
        config.format,
        &config.fingerprint(dataset),
        Some(&dataset.root),
    )?;
    let names: Vec<String> = config
        .methods
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let tags = method_tags(&names);
    let jobs = plan(dataset, &tags, config.per_image, config.shard);
    let todo: Vec<&Job> = jobs.iter().filter(|j| !writer.is_done(&key(j))).collect();
    progress((jobs.len() - todo.len()) as u64);
    let by_sample = group_by_sample(&todo);
    let outcomes: Vec<Result<usize, Skipped>> = by_sample
        .par_iter()
        .map(|group| augment_sample(dataset, config, &tags, &writer, group, progress))
        .collect::<Result<_, AugmentError>>()?;
    let mut skipped = Vec::new();
    let mut written = 0;
    for outcome in outcomes {
        match outcome {
            Ok(n) => written += n,
            Err(s) => skipped.push(s),
        }
    }
    let summary = writer.finish(&dataset.classes)?;
    Ok(AugmentReport {
        planned: jobs.len(),
        already_done: jobs.len() - todo.len(),
        written,
        skipped,
        records: summary.records,
    })
}

fn key(job: &Job) -> String {
    semaug_data::writer::sample_key(&job.file_name).unwrap_or_else(|_| job.file_name.clone())
}

/// Consecutive jobs of one sample (the plan lists them together).
fn group_by_sample<'a>(jobs: &[&'a Job]) -> Vec<Vec<&'a Job>> {
    let mut groups: Vec<Vec<&Job>> = Vec::new();
    for job in jobs {
        match groups.last_mut() {
            Some(group) if group[0].sample == job.sample => group.push(job),
            _ => groups.push(vec![job]),
        }
    }
    groups
}

/// All outputs of one source image. An unreadable source is an error, or in lenient
/// mode an `Err(Skipped)` for the report.
fn augment_sample(
    dataset: &Dataset,
    config: &AugmentConfig,
    tags: &[String],
    writer: &DatasetWriter,
    jobs: &[&Job],
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Result<usize, Skipped>, AugmentError> {
    let sample = &dataset.samples[jobs[0].sample];
    let loaded = load_with_hash(sample, &config.limits).and_then(|(image, sha256)| {
        let mask = sample.load_mask_for(image.dimensions(), &config.limits)?;
        Ok((image, mask, sha256))
    });
    // Masks are checked for every method; the masked methods use them.
    let (image, _mask, sha256) = match loaded {
        Ok(loaded) => loaded,
        Err(err) if config.lenient => return Ok(Err(Skipped::sample(sample, &dataset.root, &err))),
        Err(err) => return Err(err),
    };
    for job in jobs {
        let method = &config.methods[job.method];
        let mut rng = job_stream(config.seed, sample, &tags[job.method], job.variant);
        let output = match method {
            Method::Classical { pipeline, .. } => pipeline.apply(&image, &mut rng),
        };
        let record = record(dataset, config, sample, &sha256, job, method);
        writer.write(&output, &record, job.global_index)?;
        progress(1);
    }
    Ok(Ok(jobs.len()))
}

fn record(
    dataset: &Dataset,
    config: &AugmentConfig,
    sample: &Sample,
    sha256: &str,
    job: &Job,
    method: &Method,
) -> Record {
    let class = sample.class.unwrap_or(0);
    Record {
        file_name: job.file_name.clone(),
        label: class as u32,
        class_name: dataset
            .classes
            .get(class)
            .cloned()
            .unwrap_or_else(|| "unlabeled".into()),
        source: sample.id.clone(),
        source_sha256: sha256.to_string(),
        method: method.name().to_string(),
        params: method.params(),
        seed: config.seed,
        model: None,
        model_sha256: None,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        variant: job.variant,
        extra: Default::default(),
    }
}

/// Decode a sample and hash its bytes (the file's bytes, or the raw pixels of an
/// in-memory record) in one read.
fn load_with_hash(sample: &Sample, limits: &Limits) -> Result<(RgbImage, String), AugmentError> {
    match &sample.source {
        Source::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| AugmentError::Io {
                path: path.clone(),
                source,
            })?;
            let image = decode_bytes(&bytes, path, limits)?;
            Ok((image, hex::encode(Sha256::digest(&bytes))))
        }
        Source::Memory(image) => Ok((
            (**image).clone(),
            hex::encode(Sha256::digest(image.as_raw())),
        )),
    }
}
