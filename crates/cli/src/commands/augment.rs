//! `semaug augment`: map the arguments onto an [`AugmentConfig`] and run it.

use anyhow::Context;
use semaug_core::Condition;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_data::writer::Format as WriterFormat;
use semaug_models::embedded::EmbeddedGenerator;
use semaug_ops::augment::{run as run_augment, AugmentConfig, Backend};
use semaug_ops::method::Method;
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
        .map(|text| method(text, &args))
        .collect::<Result<Vec<_>, _>>()?;
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
    let generator = if config.methods.iter().any(Method::is_generative) {
        let mut generator = model::load(&args.model)?;
        if let Some(path) = &args.concepts {
            let sha = attach_concepts(&mut generator, path)?;
            provenance.insert("concepts_sha256".into(), sha.into());
        }
        Some(generator)
    } else {
        None
    };
    let backend = generator.as_ref().map(|g| Backend {
        generator: g,
        conditions: conditions(g, &dataset.classes, global.quiet),
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

/// Parse one `--method`, filling run-wide `--steps/--solver/--guidance` into
/// generative methods that do not set them.
fn method(text: &str, args: &AugmentArgs) -> Result<Method, UsageError> {
    let usage = |e: &dyn std::fmt::Display| UsageError(format!("--method {text}: {e}"));
    let mut spec = MethodSpec::parse(text).map_err(|e| usage(&e))?;
    if Method::is_generative_name(&spec.name) {
        let defaults = [
            ("steps", args.steps.map(|s| s.to_string())),
            ("solver", args.solver.clone()),
            ("guidance", args.guidance.map(|g| g.to_string())),
        ];
        for (key, value) in defaults {
            if let (Some(value), None) = (value, spec.get(key)) {
                spec.items.push(Item {
                    key: key.to_string(),
                    values: vec![value],
                });
            }
        }
    }
    Method::from_spec(&spec).map_err(|e| usage(&e))
}

/// Load learned concepts, refusing a file learned for another model; returns the
/// file's sha256 for the provenance.
fn attach_concepts(
    generator: &mut EmbeddedGenerator,
    path: &std::path::Path,
) -> anyhow::Result<String> {
    let (concepts, model_sha) = semaug_models::concepts::load(path)?;
    let ours = semaug_core::Generator::info(generator).weights_sha256;
    if let (Some(theirs), Some(ours)) = (&model_sha, &ours) {
        if theirs != ours {
            anyhow::bail!(
                "{}: learned for model {theirs}, not for this model ({ours}); learn them again with this --model",
                path.display()
            );
        }
    }
    generator.concepts.extend(concepts);
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(semaug_models::unet::sha256_hex(&bytes))
}

/// Each dataset class conditions on its learned concept `<class>` if there is one, else
/// on the model's class of the same name; a class the model does not know is generated
/// unconditionally (with a warning).
fn conditions(generator: &EmbeddedGenerator, classes: &[String], quiet: bool) -> Vec<Condition> {
    classes
        .iter()
        .map(|name| match generator.class_index(name) {
            _ if generator.concepts.contains_key(&format!("<{name}>")) => Condition::Concept(format!("<{name}>")),
            Some(i) => Condition::Class(i),
            None => {
                if !quiet {
                    eprintln!("warning: the model has no class `{name}`; its images are generated unconditionally");
                }
                Condition::Null
            }
        })
        .collect()
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
