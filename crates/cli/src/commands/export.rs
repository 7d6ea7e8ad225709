//! `semaug export`: a training run's newest EMA weights as a model directory, while
//! the run may still be going (checkpoints are complete once they have their name).

use std::path::Path;

use anyhow::Context;
use semaug_data::image_io::encode_png;
use semaug_data::plot::{LineChart, Series};
use semaug_data::writer::atomic::publish;
use semaug_models::embedded::CLASSES_FILE;
use semaug_models::flow_training::{export_ema, loss_history};

use crate::cli::{ExportArgs, Global};

pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<()> {
    let step = export(&args.run, &args.out, !args.f32)?;
    if !global.quiet {
        println!("step {step} EMA weights -> {}", args.out.display());
    }
    Ok(())
}

/// Export the EMA weights, the class names and the loss curve (`loss.png`); returns
/// the checkpoint's step. The class names are read first, so a run without them
/// leaves no half-written model directory.
pub fn export(run: &Path, out: &Path, half: bool) -> anyhow::Result<u64> {
    let classes = run.join(CLASSES_FILE);
    let bytes = std::fs::read(&classes).with_context(|| {
        format!(
            "cannot read {} (a run folder of `semaug train` has it)",
            classes.display()
        )
    })?;
    let (_, step) = export_ema(run, out, half)?;
    publish(&out.join(CLASSES_FILE), &bytes)?;
    let history = loss_history(run)?;
    let points = history.iter().map(|(s, l)| (*s as f64, *l)).collect();
    let chart = LineChart {
        title: format!("flow-matching loss, {step} steps"),
        x_label: "step".into(),
        y_label: "loss (mean of 20 steps)".into(),
        series: vec![Series::new("", points)],
        log_y: true,
        ..LineChart::default()
    };
    publish(&out.join("loss.png"), &encode_png(&chart.render())?)?;
    Ok(step)
}
