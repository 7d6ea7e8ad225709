//! `semaug augment`: map the arguments onto an [`AugmentConfig`] and run it.

use std::path::Path;

use anyhow::Context;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_data::writer::Format as WriterFormat;
use semaug_ops::augment::{run as run_augment, AugmentConfig, Backend};
use semaug_ops::method::Method;
use semaug_ops::method_file::{self, MethodFileError};
use semaug_ops::plan::Shard;
use semaug_ops::spec::{Item, MethodSpec};

use super::model;
use crate::cli::{AugmentArgs, Format, Global};
use crate::progress;
use crate::UsageError;

/// Samples per WebDataset tar shard.
const SAMPLES_PER_SHARD: u64 = 1000;

pub fn run(global: &Global, args: AugmentArgs) -> anyhow::Result<()> {
    if args.per_image == 0 || args.batch == 0 {
        return Err(UsageError("--per-image and --batch must be at least 1".into()).into());
    }
    let methods = args
        .method
        .iter()
        .map(|text| methods(text, &args))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let shard = shard(&args)?;
    let options = OpenOptions {
        lenient: args.lenient,
        masks: args.masks.clone(),
    };
    let dataset = open_dataset(&args.data, &options)
        .with_context(|| format!("cannot open dataset {}", args.data.display()))?;
    let config = AugmentConfig {
        methods,
        per_image: args.per_image,
        seed: global.seed,
        format: match args.format {
            Format::Imagefolder => WriterFormat::ImageFolder,
            Format::Webdataset => WriterFormat::WebDataset {
                samples_per_shard: SAMPLES_PER_SHARD,
            },
        },
        shard,
        lenient: args.lenient,
        limits: Limits::default(),
    };
    let mut provenance = std::collections::BTreeMap::new();
    let model = if config.methods.iter().any(Method::is_generative) {
        let mut model = model::load(&args.generator)?;
        if let Some(path) = &args.concepts {
            let sha = model.attach_concepts(path)?;
            provenance.insert("concepts_sha256".into(), sha.into());
        }
        if let Some(template) = model.loaded.prompt_template() {
            // Part of the run's fingerprint: another prompt is another dataset.
            provenance.insert("prompt".into(), template.into());
        }
        if let Some(dtype) = model.half_precision() {
            // Half-precision weights give other bytes: not the same dataset either.
            provenance.insert("dtype".into(), dtype.into());
        }
        let conditions = model.conditions(&dataset.classes, global.quiet);
        Some((model, conditions))
    } else {
        None
    };
    let generator = model.as_ref().map(|(m, _)| m.generator());
    let backend = model
        .as_ref()
        .zip(generator.as_ref())
        .map(|((_, conditions), g)| Backend {
            generator: g,
            conditions: conditions.clone(),
            batch: args.batch,
            provenance: provenance.clone(),
        });
    let total = shard.range(dataset.samples.len()).len() * config.methods.len() * config.per_image;
    let bar = progress::bar(total as u64, "images", global.quiet);
    let report = run_augment(&dataset, &config, backend.as_ref(), &args.out, &|n| {
        bar.inc(n)
    })?;
    bar.finish();
    if !global.quiet {
        for s in &report.skipped {
            let path = s.path.display().to_string();
            if s.reason.contains(&path) {
                eprintln!("skipped: {}", s.reason);
            } else {
                eprintln!("skipped: {path}: {}", s.reason);
            }
        }
        println!(
            "wrote {} images ({} already done, {} sources skipped) to {}; manifest has {} records",
            report.written,
            report.already_done,
            report.skipped.len(),
            args.out.display(),
            report.records
        );
    }
    Ok(())
}

/// Parse one `--method`: a text spec, or a `.toml` method file holding several.
fn methods(text: &str, args: &AugmentArgs) -> Result<Vec<Method>, UsageError> {
    if !method_file::is_method_file(text) {
        let usage = |e: &dyn std::fmt::Display| UsageError(format!("--method {text}: {e}"));
        let mut spec = MethodSpec::parse(text).map_err(|e| usage(&e))?;
        with_run_defaults(&mut spec, args);
        return Ok(vec![Method::from_spec(&spec).map_err(|e| usage(&e))?]);
    }
    // The file's errors already name it, its table and line.
    let file_error = |e: MethodFileError| UsageError(e.to_string());
    let mut entries = method_file::load_specs(Path::new(text)).map_err(file_error)?;
    entries
        .iter_mut()
        .map(|entry| {
            with_run_defaults(&mut entry.spec, args);
            entry.to_method().map_err(file_error)
        })
        .collect()
}

/// Fills run-wide `--steps/--solver/--guidance` into a generative method that does not
/// set them.
fn with_run_defaults(spec: &mut MethodSpec, args: &AugmentArgs) {
    if Method::is_generative_name(&spec.name) {
        for (key, value) in args.sampling.spec_items() {
            if let (Some(value), None) = (value, spec.get(key)) {
                spec.items.push(Item {
                    key: key.to_string(),
                    values: vec![value],
                });
            }
        }
    }
}

/// `--shard-index/--num-shards`, defaulting to the cluster's array-job variables.
fn shard(args: &AugmentArgs) -> anyhow::Result<Shard> {
    let env = |name: &str| -> anyhow::Result<Option<usize>> {
        match std::env::var(name) {
            Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                UsageError(format!("{name}={v} is not a non-negative integer")).into()
            }),
            Err(_) => Ok(None),
        }
    };
    let slurm_min = env("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let index = match args.shard_index {
        Some(i) => i,
        None => match env("SLURM_ARRAY_TASK_ID")? {
            Some(id) => id.saturating_sub(slurm_min),
            None => env("JOB_COMPLETION_INDEX")?.unwrap_or(0),
        },
    };
    let count = match args.num_shards {
        Some(n) => n,
        None => env("SLURM_ARRAY_TASK_COUNT")?.unwrap_or(1),
    };
    if count == 0 || index >= count {
        return Err(UsageError(format!(
            "shard index {index} must be below the number of shards {count} \
             (set --shard-index and --num-shards)"
        ))
        .into());
    }
    Ok(Shard { index, count })
}
