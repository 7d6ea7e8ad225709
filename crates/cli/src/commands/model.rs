//! `--model`, `--device`, `--dtype`, `--prompt`: find the model offline, load it, and
//! condition it on a dataset's classes.

use anyhow::Context;
use candle_core::{DType, Device};
use semaug_core::Condition;
use semaug_models::embedded::{shipped, EmbeddedGenerator};
use semaug_models::pretrained::{self, parse_device, LoadedModel, OnDevice, PretrainedError};

use crate::cli::{ModelArgs, WeightsPrecision};
use crate::UsageError;

/// A loaded generative model, the device its networks run on and their weights' dtype.
pub struct Model {
    pub loaded: LoadedModel,
    device: Device,
    precision: WeightsPrecision,
}

impl Model {
    /// `f16` or `bf16` when the networks run in half precision (which changes the output
    /// bytes, so it belongs in a run's fingerprint); `None` in f32.
    pub fn half_precision(&self) -> Option<&'static str> {
        match (&self.loaded, self.precision) {
            (LoadedModel::Embedded(_), _) | (_, WeightsPrecision::F32) => None,
            (_, WeightsPrecision::F16) => Some("f16"),
            (_, WeightsPrecision::Bf16) => Some("bf16"),
        }
    }

    /// The model seen from the CPU (networks on `--device`).
    pub fn generator(&self) -> OnDevice<'_> {
        OnDevice::new(self.loaded.generator(), self.device.clone())
    }

    /// Conditions for `classes` (see `pretrained::labels`), warning about names the
    /// model does not know.
    pub fn conditions(&mut self, classes: &[String], quiet: bool) -> Vec<Condition> {
        let found = self.loaded.class_conditions(classes);
        if !quiet && self.loaded.class_names().is_empty() && !found.unknown.is_empty() {
            eprintln!("note: the model is unconditional; every class is generated without a label");
        } else if !quiet {
            warn_unknown_classes(&found.unknown);
        }
        found.conditions
    }

    /// Attach a concept file, refusing one learned for another model; returns the
    /// file's sha256 for the provenance.
    pub fn attach_concepts(&mut self, path: &std::path::Path) -> anyhow::Result<String> {
        let (concepts, model_sha) = semaug_models::concepts::load(path)?;
        let ours = self.loaded.generator().info().weights_sha256;
        if let (Some(theirs), Some(ours)) = (&model_sha, &ours) {
            if theirs != ours {
                anyhow::bail!(
                    "{}: learned for model {theirs}, not for this model ({ours}); learn them \
                     again with this --model",
                    path.display()
                );
            }
        }
        self.loaded
            .attach_concepts(concepts)
            .with_context(|| format!("cannot attach the concepts of {}", path.display()))?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(semaug_models::unet::sha256_hex(&bytes))
    }
}

/// One warning naming every dataset class the model does not know (none: no warning).
pub fn warn_unknown_classes(unknown: &[String]) {
    if unknown.is_empty() {
        return;
    }
    let names: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
    let (noun, its) = match names.len() {
        1 => ("class", "its"),
        _ => ("classes", "their"),
    };
    eprintln!(
        "warning: the model has no {noun} {}; {its} images are generated unconditionally \
         (learn concepts for them with `semaug learn-concepts`)",
        names.join(", ")
    );
}

/// Resolve and load `--model` on `--device` with `--dtype` weights, with `--prompt` for
/// text models.
pub fn load(args: &ModelArgs) -> anyhow::Result<Model> {
    let device = parse_device(&args.device).map_err(UsageError)?;
    let resolved = pretrained::resolve(&args.model).map_err(|e| resolve_error(&args.model, e))?;
    let mut loaded = pretrained::load_as(&resolved, &device, dtype(args.dtype))
        .with_context(|| format!("cannot load model {}", args.model))?;
    // The embedded model is small and always runs on the CPU.
    let device = match loaded {
        LoadedModel::Embedded(_) => Device::Cpu,
        _ => device,
    };
    if let Some(template) = &args.prompt {
        if !template.contains("{class}") {
            return Err(UsageError(format!(
                "--prompt {template:?}: needs `{{class}}` where the class name goes"
            ))
            .into());
        }
        loaded
            .set_prompt_template(template)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    Ok(Model {
        loaded,
        device,
        precision: args.dtype,
    })
}

/// The candle dtype of `--dtype`.
pub fn dtype(precision: WeightsPrecision) -> DType {
    match precision {
        WeightsPrecision::F32 => DType::F32,
        WeightsPrecision::F16 => DType::F16,
        WeightsPrecision::Bf16 => DType::BF16,
    }
}

/// A spec that names nothing usable is a usage error (exit 2); a model that is there
/// but broken (bad weights, unreadable files) is an input error (exit 1).
fn resolve_error(spec: &str, e: PretrainedError) -> anyhow::Error {
    match e {
        PretrainedError::NotAModel { .. }
        | PretrainedError::NotCached { .. }
        | PretrainedError::CacheRevision { .. }
        | PretrainedError::UnsupportedPipeline { .. } => {
            UsageError(format!("--model {spec}: {e}")).into()
        }
        other => anyhow::Error::new(other).context(format!("--model {spec}")),
    }
}

/// The embedded-format model only (`embedded` or a model directory), for commands that
/// need its network itself (bench).
pub fn load_embedded(spec: &str) -> anyhow::Result<EmbeddedGenerator> {
    if spec == shipped::NAME {
        return shipped::load().context("cannot load the shipped model");
    }
    let dir = std::path::Path::new(spec);
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "--model {spec}: not `embedded` and not a model directory (a UNet2DModel folder \
             with config.json)"
        ))
        .into());
    }
    EmbeddedGenerator::load(dir).with_context(|| format!("cannot load model {}", dir.display()))
}
