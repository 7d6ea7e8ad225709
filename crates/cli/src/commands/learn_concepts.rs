//! `semaug learn-concepts`: one token per class folder, learned with the model frozen.

use std::collections::BTreeMap;

use anyhow::Context;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_models::concepts::{learn, save, ConceptConfig, ConceptInit};
use semaug_models::flow_training::TrainImages;
use semaug_models::pretrained::{concept_token, LoadedModel, SdConceptLearner};

use super::model;
use crate::cli::{Global, LearnConceptsArgs, WeightsPrecision};
use crate::progress;
use crate::UsageError;

pub fn run(global: &Global, args: LearnConceptsArgs) -> anyhow::Result<()> {
    if args.vectors != 1 {
        return Err(
            UsageError("--vectors: the embedded model learns one vector per token".into()).into(),
        );
    }
    if args.steps == 0 || args.batch == 0 || !(args.lr > 0.0) {
        return Err(UsageError("--steps, --batch and --lr must be positive".into()).into());
    }
    if args.generator.device != "cpu" {
        return Err(UsageError(
            "--device: learn-concepts runs on the CPU for now (textual inversion needs \
             gradients through the device boundary)"
                .into(),
        )
        .into());
    }
    if args.generator.dtype != WeightsPrecision::F32 {
        return Err(UsageError(
            "--dtype: learn-concepts trains in f32 (half-precision weights are for \
             generation on a GPU)"
                .into(),
        )
        .into());
    }
    let model = model::load(&args.generator)?;
    let init = init(&model.loaded, &args.init)?;
    let data = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", args.data.display()))?;
    if data.classes.is_empty() {
        return Err(UsageError(format!(
            "{}: needs one folder per new class",
            args.data.display()
        ))
        .into());
    }
    let size = model.loaded.generator().info().image_size;
    let bar = progress::bar(
        args.steps * data.classes.len() as u64,
        "steps",
        global.quiet,
    );
    let mut concepts = BTreeMap::new();
    for (c, name) in data.classes.iter().enumerate() {
        let class = data.filter(|s| s.class == Some(c));
        let images = TrainImages::load(&class, None, size, &Limits::default())?;
        let config = ConceptConfig {
            steps: args.steps,
            learning_rate: args.lr,
            batch_size: args.batch,
            init: init.clone(),
            seed: global.seed ^ semaug_core::seeds::label(name),
        };
        let done = c as u64 * args.steps;
        let token = concept_token(name);
        let mut progress = |step, loss| bar.set(done + step, format!("{token} loss {loss:.4}"));
        let row = match &model.loaded {
            LoadedModel::Embedded(g) => learn(g, &images, &config, &mut progress)?,
            LoadedModel::StableDiffusion(g) => {
                let learner = SdConceptLearner::new(g, &token)?;
                learn(&learner, &images, &config, &mut progress)?
            }
            _ => unreachable!("init() refused this model"),
        };
        concepts.insert(token, row);
    }
    bar.finish();
    let sha = model
        .loaded
        .generator()
        .info()
        .weights_sha256
        .unwrap_or_default();
    save(&args.out, &concepts, &sha)?;
    if !global.quiet {
        let tokens: Vec<&String> = concepts.keys().collect();
        println!(
            "learned {} concepts ({tokens:?}) -> {}",
            concepts.len(),
            args.out.display()
        );
    }
    Ok(())
}

/// `--init`: `null`, a class of a class-table model, or any word for a text model;
/// refuses models that cannot learn concepts.
fn init(model: &LoadedModel, init: &str) -> Result<ConceptInit, UsageError> {
    match (model, init) {
        (LoadedModel::Embedded(_) | LoadedModel::StableDiffusion(_), "null") => {
            Ok(ConceptInit::Null)
        }
        (LoadedModel::Embedded(g), name) => {
            g.class_index(name).map(ConceptInit::Class).ok_or_else(|| {
                UsageError(format!(
                    "--init {name}: not `null` and not a class of the model ({})",
                    g.classes.join(", ")
                ))
            })
        }
        (LoadedModel::StableDiffusion(_), word) => Ok(ConceptInit::Word(word.to_string())),
        _ => Err(UsageError(
            "learn-concepts needs the embedded model (or one in its format) or a Stable \
             Diffusion pipeline"
                .into(),
        )),
    }
}
