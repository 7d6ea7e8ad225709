//! What `--model` names, found on disk without any network access.
//!
//! A spec is one of:
//! * `embedded`: the model shipped in the binary;
//! * a directory: `model_index.json` makes it a pipeline, chosen by its `_class_name`
//!   (Stable Diffusion 1.x/2.x or 3, or a DDPM/DDIM pipeline around a `UNet2DModel`); a
//!   `config.json` whose `_class_name` is `UNet2DModel` is a DDPM/DDIM denoiser when a
//!   scheduler config sits beside it (`scheduler_config.json`, `scheduler/`, or
//!   `../scheduler/` for the `unet/` folder of a pipeline) and otherwise this project's own
//!   flow model, the embedded format;
//! * a Hugging Face hub id `org/name` (optionally `org/name@revision`), looked up in the
//!   local cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
//!   The folder is `models--org--name/snapshots/<commit>/`; the commit is the content of
//!   `refs/<revision>` (`refs/main` by default), or `<revision>` itself when it names a
//!   snapshot folder; with no `refs/main` a cache holding exactly one snapshot uses it.
//!
//! Before anything is loaded, every weights file the model will read is found and its
//! safetensors header validated ([`super::weights_file`]); folders with only PyTorch pickle
//! weights are refused with the advice to convert them. [`list_models`] describes the
//! whole cache for a `semaug models` command.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use semaug_core::Generator;
use serde_json::Value;

use super::error::PretrainedError;
use super::sd::SdGenerator;
use super::sd3::{check_pipeline_folder, Sd3Generator};
use super::unet2d::Unet2dGenerator;
use super::weights_file::component_weights;
use crate::embedded::{shipped, EmbeddedGenerator};
use crate::sd::clip::CLIP_WEIGHTS_FILES;
use crate::sd::ddim::SCHEDULER_CONFIG_FILE;
use crate::sd::unet_cond::UNET_WEIGHTS_FILES;
use crate::sd::vae::VAE_WEIGHTS_FILES;
use crate::unet::WEIGHTS_FILE;

/// The spec of the model shipped in the binary.
pub const EMBEDDED: &str = shipped::NAME;
const MODEL_INDEX: &str = "model_index.json";
const CONFIG: &str = "config.json";
const SD_PIPELINES: [&str; 2] = ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"];
const SD3_PIPELINES: [&str; 2] = [
    "StableDiffusion3Pipeline",
    "StableDiffusion3Img2ImgPipeline",
];
const UNET_PIPELINES: [&str; 2] = ["DDPMPipeline", "DDIMPipeline"];
const SUPPORTED: &str = "StableDiffusionPipeline, StableDiffusionImg2ImgPipeline (SD 1.x/2.x), \
                         StableDiffusion3Pipeline, StableDiffusion3Img2ImgPipeline (SD3.0), \
                         DDPMPipeline, DDIMPipeline";

/// What kind of model a spec resolved to, and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The model shipped in the binary.
    Embedded,
    /// A `UNet2DModel` folder without a scheduler: this project's flow format.
    FlowUnet { dir: PathBuf },
    /// A `UNet2DModel` DDPM/DDIM denoiser and its scheduler config folder.
    Unet2d {
        unet_dir: PathBuf,
        scheduler_dir: PathBuf,
    },
    /// A Stable Diffusion pipeline folder.
    StableDiffusion { dir: PathBuf, pipeline: String },
    /// A Stable Diffusion 3 pipeline folder.
    StableDiffusion3 { dir: PathBuf, pipeline: String },
}

impl ModelSource {
    /// A short description, e.g. `StableDiffusionPipeline` or `UNet2DModel (DDPM/DDIM)`.
    pub fn kind(&self) -> String {
        match self {
            Self::Embedded => "embedded flow model".into(),
            Self::FlowUnet { .. } => "UNet2DModel (flow, embedded format)".into(),
            Self::Unet2d { .. } => "UNet2DModel (DDPM/DDIM)".into(),
            Self::StableDiffusion { pipeline, .. } | Self::StableDiffusion3 { pipeline, .. } => {
                pipeline.clone()
            }
        }
    }
}

/// A resolved `--model`: the spec as given and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub spec: String,
    pub source: ModelSource,
}

/// A loaded model of any kind.
#[derive(Debug, Clone)]
pub enum LoadedModel {
    Embedded(EmbeddedGenerator),
    Unet2d(Unet2dGenerator),
    StableDiffusion(Box<SdGenerator>),
    StableDiffusion3(Box<Sd3Generator>),
}

impl LoadedModel {
    pub fn generator(&self) -> &dyn Generator {
        match self {
            Self::Embedded(g) => g,
            Self::Unet2d(g) => g,
            Self::StableDiffusion(g) => g.as_ref(),
            Self::StableDiffusion3(g) => g.as_ref(),
        }
    }
}

/// Resolves `spec` (see the module docs) using the cache from the environment.
pub fn resolve(spec: &str) -> Result<ResolvedModel, PretrainedError> {
    let source = if spec == EMBEDDED {
        ModelSource::Embedded
    } else if Path::new(spec).is_dir() {
        classify_dir(Path::new(spec))?
    } else if let Some(id) = HubId::parse(spec) {
        classify_dir(&id.snapshot(&hub_cache_dir())?)?
    } else {
        return Err(PretrainedError::not_a_model(
            spec,
            "not `embedded`, not a directory and not a Hugging Face id `org/name`",
        ));
    };
    Ok(ResolvedModel {
        spec: spec.to_string(),
        source,
    })
}

/// Loads a resolved model onto `device` (CPU for the embedded model), named by its spec.
pub fn load(model: &ResolvedModel, device: &Device) -> Result<LoadedModel, PretrainedError> {
    load_as(model, device, DType::F32)
}

/// [`load`] with a pretrained model's weights as `dtype`: f32, or f16 / bf16 (meant for a
/// GPU; images, latents and velocities still cross the generator seam as f32). The
/// embedded model ignores `dtype` and runs in f32 on the CPU.
pub fn load_as(
    model: &ResolvedModel,
    device: &Device,
    dtype: DType,
) -> Result<LoadedModel, PretrainedError> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(PretrainedError::Unsupported(format!(
            "weights dtype {dtype:?}: pretrained models load as F32, F16 or BF16"
        )));
    }
    let embedded = |e: crate::embedded::EmbeddedError| {
        PretrainedError::not_a_model(&model.spec, e.to_string())
    };
    Ok(match &model.source {
        ModelSource::Embedded => LoadedModel::Embedded(shipped::load().map_err(embedded)?),
        ModelSource::FlowUnet { dir } => {
            LoadedModel::Embedded(EmbeddedGenerator::load(dir).map_err(embedded)?)
        }
        ModelSource::Unet2d {
            unet_dir,
            scheduler_dir,
        } => LoadedModel::Unet2d(
            Unet2dGenerator::load_as(unet_dir, scheduler_dir, device, dtype)?
                .with_name(&model.spec),
        ),
        ModelSource::StableDiffusion { dir, .. } => LoadedModel::StableDiffusion(Box::new(
            SdGenerator::load_as(dir, device, dtype)?.with_name(&model.spec),
        )),
        ModelSource::StableDiffusion3 { dir, .. } => LoadedModel::StableDiffusion3(Box::new(
            Sd3Generator::load_as(dir, device, dtype)?.with_name(&model.spec),
        )),
    })
}

/// What the model folder `dir` holds, with every weights file it needs validated.
pub fn classify_dir(dir: &Path) -> Result<ModelSource, PretrainedError> {
    let index = dir.join(MODEL_INDEX);
    if index.is_file() {
        return classify_pipeline(dir, &class_name(&index)?);
    }
    let config = dir.join(CONFIG);
    if !config.is_file() {
        return Err(PretrainedError::not_a_model(
            dir,
            "no model_index.json (a diffusers pipeline) or config.json (a diffusers model)",
        ));
    }
    let class = class_name(&config)?;
    if class != "UNet2DModel" {
        return Err(PretrainedError::not_a_model(
            dir,
            format!(
                "config.json describes a `{class}`; expected a UNet2DModel or a pipeline folder"
            ),
        ));
    }
    component_weights(dir, &[WEIGHTS_FILE])?;
    Ok(match scheduler_beside(dir) {
        Some(scheduler_dir) => ModelSource::Unet2d {
            unet_dir: dir.to_path_buf(),
            scheduler_dir,
        },
        None => ModelSource::FlowUnet {
            dir: dir.to_path_buf(),
        },
    })
}

fn classify_pipeline(dir: &Path, class: &str) -> Result<ModelSource, PretrainedError> {
    if SD_PIPELINES.contains(&class) {
        component_weights(&dir.join("unet"), &UNET_WEIGHTS_FILES)?;
        component_weights(&dir.join("vae"), &VAE_WEIGHTS_FILES)?;
        component_weights(&dir.join("text_encoder"), &CLIP_WEIGHTS_FILES)?;
        return Ok(ModelSource::StableDiffusion {
            dir: dir.to_path_buf(),
            pipeline: class.to_string(),
        });
    }
    if SD3_PIPELINES.contains(&class) {
        check_pipeline_folder(dir)?;
        return Ok(ModelSource::StableDiffusion3 {
            dir: dir.to_path_buf(),
            pipeline: class.to_string(),
        });
    }
    if UNET_PIPELINES.contains(&class) {
        // Old DDPM repositories keep the UNet and scheduler files at the top level.
        let nested = dir.join("unet");
        let unet_dir = if nested.join(CONFIG).is_file() {
            nested
        } else {
            dir.to_path_buf()
        };
        component_weights(&unet_dir, &[WEIGHTS_FILE])?;
        let scheduler_dir = scheduler_beside(&unet_dir)
            .or_else(|| scheduler_beside(dir))
            .ok_or_else(|| {
                PretrainedError::not_a_model(dir, "the pipeline has no scheduler_config.json")
            })?;
        return Ok(ModelSource::Unet2d {
            unet_dir,
            scheduler_dir,
        });
    }
    Err(PretrainedError::UnsupportedPipeline {
        path: dir.join(MODEL_INDEX),
        class_name: class.to_string(),
        supported: SUPPORTED,
    })
}

/// The folder holding the scheduler config for the UNet folder `dir`, if any.
fn scheduler_beside(dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![dir.to_path_buf(), dir.join("scheduler")];
    if let Some(parent) = dir.parent() {
        candidates.push(parent.join("scheduler"));
    }
    candidates
        .into_iter()
        .find(|c| c.join(SCHEDULER_CONFIG_FILE).is_file())
}

/// The `_class_name` of a diffusers JSON file.
fn class_name(path: &Path) -> Result<String, PretrainedError> {
    let bytes = std::fs::read(path).map_err(|e| PretrainedError::io(path, e))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|source| PretrainedError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    json.get("_class_name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            PretrainedError::not_a_model(path, "no `_class_name` (not written by diffusers?)")
        })
}

/// The local Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (as `huggingface_hub` resolves it).
pub fn hub_cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HF_HUB_CACHE") {
        return dir;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    let home = var("HOME")
        .or_else(|| var("USERPROFILE"))
        .unwrap_or_default();
    home.join(".cache").join("huggingface").join("hub")
}

/// A hub model id with an optional revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    pub org: String,
    pub name: String,
    pub revision: Option<String>,
}

impl HubId {
    /// `org/name` or `org/name@revision` (letters, digits, `-`, `_`, `.`; no `..`).
    pub fn parse(spec: &str) -> Option<Self> {
        let (id, revision) = match spec.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (spec, None),
        };
        let (org, name) = id.split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && !s.contains("..")
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !valid(org) || !valid(name) || !revision.is_none_or(valid) {
            return None;
        }
        Some(Self {
            org: org.into(),
            name: name.into(),
            revision: revision.map(str::to_string),
        })
    }

    /// `org/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The cache folder of this repository, `models--org--name`.
    pub fn folder(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}--{}", self.org, self.name))
    }

    /// The snapshot folder of the chosen revision in `cache` (see the module docs).
    pub fn snapshot(&self, cache: &Path) -> Result<PathBuf, PretrainedError> {
        let repo = self.folder(cache);
        if !repo.is_dir() {
            return Err(PretrainedError::NotCached {
                id: self.id(),
                cache: cache.to_path_buf(),
            });
        }
        let bad = |detail: String| PretrainedError::CacheRevision {
            id: self.id(),
            dir: repo.clone(),
            detail,
        };
        let snapshots = repo.join("snapshots");
        let revision = self.revision.as_deref().unwrap_or("main");
        let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
            Ok(text) => text.trim().to_string(),
            Err(_) if snapshots.join(revision).is_dir() => revision.to_string(),
            Err(_) if self.revision.is_none() => only_snapshot(&snapshots).map_err(bad)?,
            Err(_) => return Err(bad(format!("no ref or snapshot named `{revision}`"))),
        };
        let dir = snapshots.join(&commit);
        if commit.is_empty() || commit.contains(['/', '\\']) || !dir.is_dir() {
            return Err(bad(format!(
                "refs/{revision} names commit `{commit}`, which has no snapshot folder (incomplete download?)"
            )));
        }
        Ok(dir)
    }
}

/// The one snapshot in `snapshots`, or why there is not exactly one.
fn only_snapshot(snapshots: &Path) -> Result<String, String> {
    let mut names = subfolders(snapshots);
    match names.len() {
        1 => Ok(names.remove(0)),
        0 => Err("no refs/main and no snapshot".into()),
        _ => Err(format!(
            "no refs/main and {} snapshots ({}); name one as `org/name@<commit>`",
            names.len(),
            names.join(", ")
        )),
    }
}

/// Names of the folders in `dir`, sorted (empty when unreadable).
fn subfolders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One model repository in the hub cache and what it holds.
#[derive(Debug)]
pub struct CachedModel {
    /// `org/name`.
    pub id: String,
    /// The snapshot folder `refs/main` (or the only snapshot) points to.
    pub snapshot: Option<PathBuf>,
    /// The model kind, or why it cannot be used.
    pub source: Result<ModelSource, PretrainedError>,
}

/// Every model repository in the cache from the environment ([`hub_cache_dir`]).
pub fn list_models() -> Vec<CachedModel> {
    list_models_in(&hub_cache_dir())
}

/// Every `models--org--name` repository in `cache`, sorted by id, each resolved and
/// classified (datasets and spaces are skipped; a missing cache lists nothing).
pub fn list_models_in(cache: &Path) -> Vec<CachedModel> {
    subfolders(cache)
        .into_iter()
        .filter_map(|folder| {
            let rest = folder.strip_prefix("models--")?;
            let (org, name) = rest.split_once("--")?;
            Some(HubId {
                org: org.into(),
                name: name.into(),
                revision: None,
            })
        })
        .map(|id| {
            let (snapshot, source) = match id.snapshot(cache) {
                Ok(dir) => (Some(dir.clone()), classify_dir(&dir)),
                Err(e) => (None, Err(e)),
            };
            CachedModel {
                id: id.id(),
                snapshot,
                source,
            }
        })
        .collect()
}
