//! `semaug learn-concepts`: one token per class folder, learned with the model frozen.

use std::collections::BTreeMap;

use anyhow::Context;
use semaug_core::Generator;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_models::concepts::{learn, save, ConceptConfig, ConceptInit};
use semaug_models::flow_training::TrainImages;

use super::model;
use crate::cli::{Global, LearnConceptsArgs};
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
    let generator = model::load(&args.model)?;
    let init = match args.init.as_str() {
        "null" => ConceptInit::Null,
        name => ConceptInit::Class(generator.class_index(name).ok_or_else(|| {
            UsageError(format!(
                "--init {name}: not `null` and not a class of the model ({})",
                generator.classes.join(", ")
            ))
        })?),
    };
    let data = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", args.data.display()))?;
    if data.classes.is_empty() {
        return Err(UsageError(format!(
            "{}: needs one folder per new class",
            args.data.display()
        ))
        .into());
    }
    let size = generator.info().image_size;
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
        let row = learn(&generator, &images, &config, &mut |step, loss| {
            bar.set(done + step, format!("<{name}> loss {loss:.4}"));
        })?;
        concepts.insert(format!("<{name}>"), row);
    }
    bar.finish();
    let sha = generator.info().weights_sha256.unwrap_or_default();
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
