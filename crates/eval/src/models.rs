//! [`Classifier`]: a [`ResNet`] together with the `VarMap` that owns its variables, the
//! split of those variables into what the optimiser trains (with and without weight
//! decay) and what it does not (BatchNorm running statistics), and safetensors I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use semaug_train::Params;
use serde::{Deserialize, Serialize};

use crate::batch_norm::Mode;
use crate::error::EvalError;
use crate::init::ParamBuilder;
use crate::resnet::{ResNet, ResNetConfig};

/// The named presets, for configs and command lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    Resnet20,
    PreactResnet18,
    SmallResnet,
}

impl Arch {
    pub const NAMES: [&'static str; 3] = ["resnet20", "preact-resnet18", "small-resnet"];

    pub fn from_name(name: &str) -> Result<Self, EvalError> {
        match name {
            "resnet20" => Ok(Self::Resnet20),
            "preact-resnet18" | "preact18" => Ok(Self::PreactResnet18),
            "small-resnet" | "small" => Ok(Self::SmallResnet),
            _ => Err(EvalError::Config {
                what: "architecture",
                value: name.to_owned(),
                valid: Self::NAMES.join(", "),
            }),
        }
    }

    /// The preset's name, as [`Arch::from_name`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Resnet20 => Self::NAMES[0],
            Self::PreactResnet18 => Self::NAMES[1],
            Self::SmallResnet => Self::NAMES[2],
        }
    }

    pub fn config(self, num_classes: usize) -> ResNetConfig {
        match self {
            Self::Resnet20 => ResNetConfig::resnet20(num_classes),
            Self::PreactResnet18 => ResNetConfig::preact_resnet18(num_classes),
            Self::SmallResnet => ResNetConfig::small_resnet(num_classes),
        }
    }
}

/// Suffixes of the variables that are state, not parameters.
const BUFFER_SUFFIXES: [&str; 2] = [".running_mean", ".running_var"];

fn is_buffer(name: &str) -> bool {
    BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A ResNet and its variables.
pub struct Classifier {
    pub config: ResNetConfig,
    net: ResNet,
    varmap: VarMap,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// A freshly initialised network; the initial weights are a function of `seed` only.
    pub fn new(config: &ResNetConfig, seed: u64, device: &Device) -> Result<Self, EvalError> {
        config.validate()?;
        let varmap = VarMap::new();
        let net = ResNet::new(config, &ParamBuilder::new(&varmap, seed, device))?;
        Ok(Self {
            config: config.clone(),
            net,
            varmap,
        })
    }

    /// Logits `[N, num_classes]` of images `[N, C, H, W]` (f32 in [-1, 1]). A train-mode
    /// pass updates the BatchNorm running statistics.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.net.forward(x, mode)
    }

    pub fn net(&self) -> &ResNet {
        &self.net
    }

    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Every trainable variable (everything but the running statistics), sorted by name.
    pub fn trainable(&self) -> Params {
        Params::from_varmap(&self.varmap).filter(|n| !is_buffer(n))
    }

    /// Trainable variables split into `(decayed, not decayed)`: weight decay applies to
    /// convolution and linear weights (rank >= 2) and not to BatchNorm scales and shifts or
    /// biases, whose decay only fights the normalisation (Goyal et al. 2017; the common
    /// CIFAR recipes).
    pub fn decay_groups(&self) -> (Params, Params) {
        let all = self.trainable();
        let matrices: std::collections::HashSet<String> = all
            .iter()
            .filter(|(_, v)| v.rank() >= 2)
            .map(|(n, _)| n.to_owned())
            .collect();
        (
            all.filter(|n| matrices.contains(n)),
            all.filter(|n| !matrices.contains(n)),
        )
    }

    /// Number of trainable values.
    pub fn num_parameters(&self) -> usize {
        self.trainable().element_count()
    }

    /// A copy of every variable (parameters and running statistics), sorted by name.
    pub fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        Params::from_varmap(&self.varmap)
            .iter()
            .map(|(name, var)| Ok((name.to_owned(), var.as_tensor().copy()?)))
            .collect()
    }

    /// Overwrites every variable from `tensors` (e.g. what [`Classifier::state`] returned
    /// or a safetensors file); `source` names where they came from, for errors.
    pub fn set_state(
        &self,
        tensors: &HashMap<String, Tensor>,
        source: &Path,
    ) -> Result<(), EvalError> {
        let mismatch = |detail: String| EvalError::WeightsMismatch {
            path: source.to_owned(),
            detail,
        };
        let all = Params::from_varmap(&self.varmap);
        // Check everything first so a bad file leaves the model untouched.
        for (name, var) in all.iter() {
            let t = tensors
                .get(name)
                .ok_or_else(|| mismatch(format!("no tensor `{name}`")))?;
            if t.dims() != var.dims() {
                let detail = format!(
                    "`{name}` has shape {:?}, the model expects {:?}",
                    t.dims(),
                    var.dims()
                );
                return Err(mismatch(detail));
            }
        }
        for (name, var) in all.iter() {
            let t = &tensors[name];
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }

    /// Writes every variable as safetensors (to a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), EvalError> {
        let weights_error = |detail: String| EvalError::Weights {
            path: path.to_owned(),
            detail,
        };
        let map: HashMap<String, Tensor> = self.state()?.into_iter().collect();
        let tmp = temp_path(path);
        candle_core::safetensors::save(&map, &tmp).map_err(|e| weights_error(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| weights_error(e.to_string()))
    }

    /// Loads weights written by [`Classifier::save`] into this (same-shaped) model.
    pub fn load(&self, path: &Path) -> Result<(), EvalError> {
        let tensors =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| EvalError::Weights {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        self.set_state(&tensors, path)
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
