//! Synthetic training images: made once per (method, generator, images, seed) with
//! `semaug_ops::augment::run` into a cache folder under the experiment's output, or
//! read from an augmented folder the user already has (`--synthetic`), and handed to
//! training as the variants of each real image.
//!
//! Cache folders are `OUT/synthetic/<method>-<key>/`, `key` a hash of the method and
//! its parameters, the generator's description, the exact source images, the masks
//! folder, the generation seed and the variants per image. A sidecar
//! `OUT/synthetic/<method>-<key>.json` written after the folder is complete records how
//! long it took; a rerun finds it and reuses the folder. An interrupted generation
//! resumes (the augment writer skips finished outputs).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;
use semaug_core::{Condition, Generator};
use semaug_data::dataset::Dataset;
use semaug_data::image_io::{decode_file, Limits};
use semaug_data::writer::{atomic::publish, read_imagefolder_metadata, Format, Record};
use semaug_ops::augment::{run as augment, AugmentConfig, Backend};
use semaug_ops::method::Method;
use semaug_ops::plan::Shard;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ExperimentError;

/// A generator an experiment augments training images with.
pub trait SyntheticSource {
    /// Name, weights sha256 and anything else that decides its outputs: recorded in
    /// the results and hashed into cache keys.
    fn describe(&self) -> serde_json::Value;

    /// Whether the outputs depend on the training subset (e.g. concepts learned from
    /// its images): then every subset gets its own synthetic set.
    fn per_subset(&self) -> bool {
        false
    }

    /// Calls `generate` with the backend to augment `subset` with.
    fn with_backend(
        &mut self,
        subset: &Dataset,
        generate: &mut dyn FnMut(&Backend) -> Result<(), ExperimentError>,
    ) -> Result<(), ExperimentError>;
}

/// A generator with one condition per dataset class, the same for every subset.
pub struct FixedGenerator<'a> {
    pub generator: &'a dyn Generator,
    pub conditions: Vec<Condition>,
    /// Images per generator batch (speed and memory only).
    pub batch: usize,
    /// Extra provenance (e.g. a concept file's sha256), recorded with every output.
    pub provenance: BTreeMap<String, serde_json::Value>,
}

impl SyntheticSource for FixedGenerator<'_> {
    fn describe(&self) -> serde_json::Value {
        let info = self.generator.info();
        serde_json::json!({
            "name": info.name,
            "weights_sha256": info.weights_sha256,
            "image_size": [info.image_size.0, info.image_size.1],
            "conditions": self.conditions.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "provenance": self.provenance,
        })
    }

    fn with_backend(
        &mut self,
        _subset: &Dataset,
        generate: &mut dyn FnMut(&Backend) -> Result<(), ExperimentError>,
    ) -> Result<(), ExperimentError> {
        generate(&Backend {
            generator: self.generator,
            conditions: self.conditions.clone(),
            batch: self.batch,
            provenance: self.provenance.clone(),
        })
    }
}

/// The sidecar of a finished cache folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub method: String,
    pub params: serde_json::Value,
    pub generator: serde_json::Value,
    pub sources: usize,
    pub images: usize,
    pub generation_seconds: f64,
    /// Outputs a previous, interrupted invocation had already written.
    pub resumed_outputs: usize,
}

/// What [`ensure_generated`] found or made.
#[derive(Debug, Clone)]
pub struct Generated {
    pub dir: PathBuf,
    pub reused: bool,
    pub seconds: f64,
}

/// What decides a synthetic set's bytes.
pub struct SetIdentity<'a> {
    pub method: &'a Method,
    pub generator: &'a serde_json::Value,
    pub subset: &'a Dataset,
    pub seed: u64,
    pub per_image: usize,
}

impl SetIdentity<'_> {
    /// Hex sha256 of everything that decides the outputs.
    pub fn key(&self) -> String {
        let ids = ids_sha256(self.subset);
        let text = serde_json::json!({
            "method": self.method.name(),
            "params": self.method.params(),
            "generator": self.generator,
            "ids": ids,
            "classes": self.subset.classes,
            "masks": self.subset.masks_dir.as_ref().map(|p| p.display().to_string()),
            "seed": self.seed,
            "per_image": self.per_image,
        })
        .to_string();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// `root/<method>-<first 16 hex digits of the key>`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(format!("{}-{}", self.method.name(), &self.key()[..16]))
    }
}

/// The cache folder of `identity` under `root`, generated now unless a finished one
/// is there.
pub fn ensure_generated(
    root: &Path,
    identity: &SetIdentity,
    source: &mut dyn SyntheticSource,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Generated, ExperimentError> {
    let dir = identity.dir(root);
    let sidecar = dir.with_extension("json");
    if let Ok(text) = std::fs::read_to_string(&sidecar) {
        if let Ok(entry) = serde_json::from_str::<CacheEntry>(&text) {
            return Ok(Generated {
                dir,
                reused: true,
                seconds: entry.generation_seconds,
            });
        }
    }
    std::fs::create_dir_all(root).map_err(|e| ExperimentError::io(root, "create", e))?;
    let config = AugmentConfig {
        methods: vec![identity.method.clone()],
        per_image: identity.per_image,
        seed: identity.seed,
        format: Format::ImageFolder,
        shard: Shard::default(),
        lenient: false,
        limits: Limits::default(),
    };
    let started = Instant::now();
    let mut report = None;
    source.with_backend(identity.subset, &mut |backend| {
        report = Some(augment(
            identity.subset,
            &config,
            Some(backend),
            &dir,
            progress,
        )?);
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let report = report.ok_or_else(|| {
        ExperimentError::data("generator", "the synthetic source never ran the generation")
    })?;
    let entry = CacheEntry {
        method: identity.method.name().to_owned(),
        params: identity.method.params(),
        generator: identity.generator.clone(),
        sources: identity.subset.len(),
        images: report.records,
        generation_seconds: seconds,
        resumed_outputs: report.already_done,
    };
    let json = serde_json::to_vec_pretty(&entry)
        .map_err(|e| ExperimentError::io(&sidecar, "encode", e))?;
    publish(&sidecar, &json)?;
    Ok(Generated {
        dir,
        reused: false,
        seconds,
    })
}

/// Synthetic images of one augmented folder, by source sample id, in variant order.
#[derive(Debug, Default)]
pub struct Variants {
    by_source: HashMap<String, Vec<RgbImage>>,
}

impl Variants {
    /// The outputs of `method` in the ImageFolder `dir`, decoded and resized to `size`
    /// when they differ. With `strict_method` false every record is taken (a cache
    /// folder holds only its method).
    pub fn load(
        dir: &Path,
        method: &Method,
        size: Option<(u32, u32)>,
        strict_method: bool,
    ) -> Result<Self, ExperimentError> {
        let records = read_imagefolder_metadata(dir)?;
        let params = method.params();
        let wanted: Vec<&Record> = records
            .iter()
            .filter(|r| !strict_method || (r.method == method.name() && r.params == params))
            .collect();
        if wanted.is_empty() {
            let mut found: Vec<String> = records.iter().map(|r| r.method.clone()).collect();
            found.sort();
            found.dedup();
            return Err(ExperimentError::SyntheticMissing {
                dir: dir.to_owned(),
                method: method.name().to_owned(),
                found: if found.is_empty() {
                    "nothing".into()
                } else {
                    found.join(", ")
                },
            });
        }
        let limits = Limits::default();
        let decoded: Vec<(String, u32, RgbImage)> = wanted
            .par_iter()
            .map(|r| {
                let image = decode_file(&dir.join(&r.file_name), &limits)?;
                let image = match size {
                    Some((w, h)) if image.dimensions() != (w, h) => resize(&image, w, h),
                    _ => image,
                };
                Ok((r.source.clone(), r.variant, image))
            })
            .collect::<Result<_, ExperimentError>>()?;
        let mut grouped: HashMap<String, Vec<(u32, RgbImage)>> = HashMap::new();
        for (source, variant, image) in decoded {
            grouped.entry(source).or_default().push((variant, image));
        }
        let by_source = grouped
            .into_iter()
            .map(|(source, mut v)| {
                v.sort_by_key(|(variant, _)| *variant);
                (source, v.into_iter().map(|(_, im)| im).collect())
            })
            .collect();
        Ok(Self { by_source })
    }

    /// The variants of each of `ids` (empty for an id without any).
    pub fn for_ids<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<Vec<RgbImage>> {
        ids.map(|id| self.by_source.get(id).cloned().unwrap_or_default())
            .collect()
    }
}

/// Resizes with a triangle filter (bilinear, antialiased when shrinking).
pub fn resize(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle)
}

/// sha256 (hex) of the dataset's sorted sample ids, one per line.
pub fn ids_sha256(data: &Dataset) -> String {
    let mut ids: Vec<&str> = data.ids().collect();
    ids.sort_unstable();
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}
