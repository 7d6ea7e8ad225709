//! `semaug augment` as a library call: dataset in, augmented dataset out.
//!
//! The run plans every output ([`crate::plan`]), skips the ones the writer already
//! holds (a resumed run), makes the rest and hands each to the writer, which publishes
//! it atomically; `finish` then writes the manifest. Classical outputs are made per
//! source in parallel; generative outputs are grouped by their drawn [`Recipe`] and run
//! in batches through the generator. Every output depends only on its plan entry and
//! seed stream, so interrupted and resumed runs, sharded runs, any batch size and any
//! thread count end with the same bytes.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use semaug_core::seeds::label;
use semaug_core::{Condition, Generator};
use semaug_data::dataset::{Dataset, DatasetError, Sample, Skipped, Source};
use semaug_data::image_io::{decode_bytes, images_to_tensor, tensor_to_images, ImageError, Limits};
use semaug_data::mask;
use semaug_data::writer::{DatasetWriter, Format, Record, WriterError};

use crate::generative::{auto_dilation, inpaint, perturb, splice, InpaintConfig, OpError, Region};
use crate::method::{Method, Recipe};
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

/// The generator a generative run uses, and the condition of each dataset class.
pub struct Backend<'a> {
    pub generator: &'a dyn Generator,
    /// Indexed by dataset class; unlabeled samples use [`Condition::Null`].
    pub conditions: Vec<Condition>,
    /// Outputs per generator batch (does not change the results).
    pub batch: usize,
    /// Extra provenance for every generated record (e.g. the concept file's sha256);
    /// part of the run's settings fingerprint too.
    pub provenance: std::collections::BTreeMap<String, serde_json::Value>,
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
    #[error(transparent)]
    Op(#[from] OpError),
    #[error("generation failed: {0}")]
    Tensor(#[from] candle_core::Error),
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
    fn validate(&self, backend: Option<&Backend>) -> Result<(), AugmentError> {
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
        if let Some(m) = self.methods.iter().find(|m| m.is_generative()) {
            if backend.is_none() {
                return Err(AugmentError::Config(format!(
                    "method `{}` needs a generative model",
                    m.name()
                )));
            }
        }
        if backend.is_some_and(|b| b.batch == 0) {
            return Err(AugmentError::Config("--batch must be at least 1".into()));
        }
        Ok(())
    }

    /// The settings fingerprint the writer stores: a resumed run must match it. It
    /// leaves out the shard, so all shards of one run share an output folder.
    fn fingerprint(&self, dataset: &Dataset, backend: Option<&Backend>) -> serde_json::Value {
        let model = backend.map(|b| b.generator.info());
        serde_json::json!({
            "command": "augment",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "methods": self.methods.iter().map(Method::params).collect::<Vec<_>>(),
            "per_image": self.per_image,
            "seed": self.seed,
            "classes": dataset.classes,
            "samples": dataset.samples.len(),
            "model_sha256": model.and_then(|m| m.weights_sha256),
            "conditions": backend.map(|b| b.conditions.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            "provenance": backend.map(|b| &b.provenance),
        })
    }
}

/// One run's fixed context, shared by the classical and generative paths.
struct Context<'a> {
    dataset: &'a Dataset,
    config: &'a AugmentConfig,
    tags: Vec<String>,
    writer: DatasetWriter,
    progress: &'a (dyn Fn(u64) + Sync),
}

/// Run (or resume) the augmentation of `dataset` into `out`; `progress` is called with
/// the number of outputs finished since the last call.
pub fn run(
    dataset: &Dataset,
    config: &AugmentConfig,
    backend: Option<&Backend>,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<AugmentReport, AugmentError> {
    config.validate(backend)?;
    let fingerprint = config.fingerprint(dataset, backend);
    let writer = DatasetWriter::open(out, config.format, &fingerprint, Some(&dataset.root))?;
    let names: Vec<String> = config
        .methods
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let cx = Context {
        dataset,
        config,
        tags: method_tags(&names),
        writer,
        progress,
    };
    let jobs = plan(dataset, &cx.tags, config.per_image, config.shard);
    let todo: Vec<&Job> = jobs
        .iter()
        .filter(|j| !cx.writer.is_done(&key(j)))
        .collect();
    progress((jobs.len() - todo.len()) as u64);
    let (generative, classical): (Vec<&Job>, Vec<&Job>) = todo
        .iter()
        .partition(|j| config.methods[j.method].is_generative());
    // Inputs the dataset already left out (lenient opening) are reported too.
    let mut skipped = dataset.skipped.clone();
    let mut written = 0;
    for outcome in classical_outputs(&cx, &classical)? {
        match outcome {
            Ok(n) => written += n,
            Err(s) => skipped.push(s),
        }
    }
    if let Some(backend) = backend {
        let (n, bad) = generative_outputs(&cx, backend, &generative)?;
        written += n;
        skipped.extend(bad);
    }
    skipped.sort_by(|a, b| a.id.cmp(&b.id));
    skipped.dedup();
    let summary = cx.writer.finish(&dataset.classes)?;
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

/// A decoded source: pixels, mask (checked against the image) and content hash.
struct Loaded {
    image: RgbImage,
    mask: Option<GrayImage>,
    sha256: String,
}

/// Load a sample; in lenient mode a bad source becomes `Ok(Err(skipped))`.
fn load(cx: &Context, sample: &Sample) -> Result<Result<Loaded, Skipped>, AugmentError> {
    let loaded = load_with_hash(sample, &cx.config.limits).and_then(|(image, sha256)| {
        let mask = sample.load_mask_for(image.dimensions(), &cx.config.limits)?;
        Ok(Loaded {
            image,
            mask,
            sha256,
        })
    });
    match loaded {
        Ok(source) => Ok(Ok(source)),
        Err(err) if cx.config.lenient => Ok(Err(Skipped::sample(sample, &cx.dataset.root, &err))),
        Err(err) => Err(err),
    }
}

// ---------------------------------------------------------------- classical

fn classical_outputs(
    cx: &Context,
    jobs: &[&Job],
) -> Result<Vec<Result<usize, Skipped>>, AugmentError> {
    group_by_sample(jobs)
        .par_iter()
        .map(|group| classical_sample(cx, group))
        .collect()
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

fn classical_sample(cx: &Context, jobs: &[&Job]) -> Result<Result<usize, Skipped>, AugmentError> {
    let sample = &cx.dataset.samples[jobs[0].sample];
    let source = match load(cx, sample)? {
        Ok(source) => source,
        Err(skipped) => return Ok(Err(skipped)),
    };
    for job in jobs {
        let method = &cx.config.methods[job.method];
        let mut rng = job_stream(cx.config.seed, sample, &cx.tags[job.method], job.variant);
        let Method::Classical { pipeline, .. } = method else {
            unreachable!("generative jobs take the generative path")
        };
        let output = pipeline.apply(&source.image, &mut rng);
        let record = record(cx, sample, &source.sha256, job, None, None);
        cx.writer.write(&output, &record, job.global_index)?;
        (cx.progress)(1);
    }
    Ok(Ok(jobs.len()))
}

// --------------------------------------------------------------- generative

/// Jobs that share a drawn recipe run in batches; returns (written, skipped).
fn generative_outputs(
    cx: &Context,
    backend: &Backend,
    jobs: &[&Job],
) -> Result<(usize, Vec<Skipped>), AugmentError> {
    let mut groups: Vec<(usize, Recipe, Vec<&Job>)> = Vec::new();
    for job in jobs {
        let sample = &cx.dataset.samples[job.sample];
        let mut rng = job_stream(cx.config.seed, sample, &cx.tags[job.method], job.variant)
            .fork(label("recipe"));
        let recipe = cx.config.methods[job.method].recipe(&mut rng);
        match groups
            .iter_mut()
            .find(|(m, r, _)| *m == job.method && *r == recipe)
        {
            Some((_, _, members)) => members.push(job),
            None => groups.push((job.method, recipe, vec![job])),
        }
    }
    let (mut written, mut skipped) = (0, Vec::new());
    for (_, recipe, members) in &groups {
        for chunk in members.chunks(backend.batch) {
            let (n, bad) = generative_batch(cx, backend, recipe, chunk)?;
            written += n;
            skipped.extend(bad);
        }
    }
    Ok((written, skipped))
}

fn generative_batch(
    cx: &Context,
    backend: &Backend,
    recipe: &Recipe,
    jobs: &[&Job],
) -> Result<(usize, Vec<Skipped>), AugmentError> {
    let info = backend.generator.info();
    let (height, width) = info.image_size;
    let loaded: Vec<Result<Result<Loaded, Skipped>, AugmentError>> = jobs
        .par_iter()
        .map(|job| load(cx, &cx.dataset.samples[job.sample]))
        .collect();
    let mut ready: Vec<(&Job, Loaded)> = Vec::new();
    let mut skipped = Vec::new();
    for (job, outcome) in jobs.iter().zip(loaded) {
        match outcome? {
            Ok(source) => ready.push((job, source)),
            Err(s) => skipped.push(s),
        }
    }
    if ready.is_empty() {
        return Ok((0, skipped));
    }
    let images: Vec<RgbImage> = ready
        .iter()
        .map(|(_, s)| fit(&s.image, width, height))
        .collect();
    let outputs = match recipe {
        Recipe::Identity => images,
        Recipe::Classical => unreachable!("classical jobs take the classical path"),
        _ => generate(cx, backend, recipe, &ready, &images)?,
    };
    for ((job, source), output) in ready.iter().zip(outputs) {
        let sample = &cx.dataset.samples[job.sample];
        let mut record = record(cx, sample, &source.sha256, job, Some(&info), Some(recipe));
        record.extra.extend(backend.provenance.clone());
        cx.writer.write(&output, &record, job.global_index)?;
        (cx.progress)(1);
    }
    Ok((ready.len(), skipped))
}

/// Run one batch through the generator; each row's noise comes from its own stream.
fn generate(
    cx: &Context,
    backend: &Backend,
    recipe: &Recipe,
    ready: &[(&Job, Loaded)],
    images: &[RgbImage],
) -> Result<Vec<RgbImage>, AugmentError> {
    let generator = backend.generator;
    let x0 = generator.encode(&images_to_tensor(images, &Device::Cpu)?)?;
    let row_shape: Vec<usize> = std::iter::once(1)
        .chain(x0.dims()[1..].iter().copied())
        .collect();
    let mut noise_rows = Vec::with_capacity(ready.len());
    let mut conditions = Vec::with_capacity(ready.len());
    for (job, _) in ready {
        let sample = &cx.dataset.samples[job.sample];
        let mut rng = job_stream(cx.config.seed, sample, &cx.tags[job.method], job.variant)
            .fork(label("noise"));
        noise_rows.push(rng.normal_tensor(row_shape.as_slice(), &Device::Cpu)?);
        conditions.push(match sample.class {
            Some(c) => backend
                .conditions
                .get(c)
                .cloned()
                .unwrap_or(Condition::Null),
            None => Condition::Null,
        });
    }
    let noise = Tensor::cat(&noise_rows, 0)?.to_dtype(x0.dtype())?;
    let out = match recipe {
        Recipe::Perturb(c) => perturb(generator, &x0, &conditions, c, &noise)?,
        Recipe::Splice(c) => splice(generator, &x0, &conditions, c, &noise)?,
        Recipe::Inpaint(c) => {
            let (h, w) = (x0.dim(2)?, x0.dim(3)?);
            let masks = ready
                .iter()
                .map(|(_, s)| region_mask(s, c, w as u32, h as u32))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let mask = Tensor::cat(&masks, 0)?.to_dtype(x0.dtype())?;
            inpaint(generator, &x0, &mask, &conditions, c, &noise)?
        }
        Recipe::Identity | Recipe::Classical => x0.clone(),
    };
    Ok(tensor_to_images(&generator.decode(&out)?)?)
}

/// The region to regenerate at the latent size `[1, 1, h, w]`: the source's mask (or
/// a central box covering half of each side when it has none), dilated at the source
/// resolution, inverted for the background, resized by nearest neighbour.
fn region_mask(
    source: &Loaded,
    config: &InpaintConfig,
    w: u32,
    h: u32,
) -> candle_core::Result<Tensor> {
    let (sw, sh) = source.image.dimensions();
    let object = match &source.mask {
        Some(m) => mask::threshold(m, 128),
        None => mask::central_box(sw, sh, 0.5),
    };
    let grown = mask::dilate(
        &object,
        config.dilate.unwrap_or_else(|| auto_dilation(sw, sh)),
    );
    let region = match config.region {
        Region::Foreground => grown,
        // The object grown by the dilation is kept; everything else is regenerated.
        Region::Background => mask::invert(&grown),
    };
    mask::to_tensor(&mask::resize_nearest(&region, w, h), &Device::Cpu)
}

fn fit(image: &RgbImage, width: usize, height: usize) -> RgbImage {
    if image.dimensions() == (width as u32, height as u32) {
        image.clone()
    } else {
        image::imageops::resize(
            image,
            width as u32,
            height as u32,
            image::imageops::FilterType::Lanczos3,
        )
    }
}

// ------------------------------------------------------------------ records

fn record(
    cx: &Context,
    sample: &Sample,
    sha256: &str,
    job: &Job,
    model: Option<&semaug_core::GeneratorInfo>,
    recipe: Option<&Recipe>,
) -> Record {
    let method = &cx.config.methods[job.method];
    let class = sample.class.unwrap_or(0);
    let mut extra = std::collections::BTreeMap::new();
    if let Some(recipe) =
        recipe.filter(|_| matches!(method, Method::Compose(_) | Method::DaFusion { .. }))
    {
        extra.insert(
            "recipe".to_string(),
            serde_json::to_value(recipe).unwrap_or_default(),
        );
    }
    Record {
        file_name: job.file_name.clone(),
        label: class as u32,
        class_name: cx
            .dataset
            .classes
            .get(class)
            .cloned()
            .unwrap_or_else(|| "unlabeled".into()),
        source: sample.id.clone(),
        source_sha256: sha256.to_string(),
        method: method.name().to_string(),
        params: method.params(),
        seed: cx.config.seed,
        model: model.map(|m| m.name.clone()),
        model_sha256: model.and_then(|m| m.weights_sha256.clone()),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        variant: job.variant,
        extra,
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
