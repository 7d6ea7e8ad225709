//! `semaug export`: a training run's newest EMA weights as a model directory, while
//! the run may still be going (checkpoints are complete once they have their name).

use std::path::Path;

use anyhow::Context;
use semaug_data::writer::atomic::publish;
use semaug_models::embedded::CLASSES_FILE;
use semaug_models::flow_training::export_ema;

use crate::cli::{ExportArgs, Global};

pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<()> {
    let step = export(&args.run, &args.out, !args.f32)?;
    if !global.quiet {
        println!("step {step} EMA weights -> {}", args.out.display());
    }
    Ok(())
}

/// Export the EMA weights and the class names; returns the checkpoint's step.
pub fn export(run: &Path, out: &Path, half: bool) -> anyhow::Result<u64> {
    let (_, step) = export_ema(run, out, half)?;
    let classes = run.join(CLASSES_FILE);
    let bytes =
        std::fs::read(&classes).with_context(|| format!("cannot read {}", classes.display()))?;
    publish(&out.join(CLASSES_FILE), &bytes)?;
    Ok(step)
}
