//! `semaug train`: map the arguments onto a [`FlowTrainConfig`], load the images, train.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_data::writer::atomic::publish;
use semaug_models::embedded::CLASSES_FILE;
use semaug_models::flow_training::{train, Budget, FlowTrainConfig, SigmaSampling, TrainImages};
use semaug_models::unet::UNet2DConfig;

use crate::cli::{Global, TrainArgs};
use crate::progress;
use crate::UsageError;

pub fn run(global: &Global, args: TrainArgs) -> anyhow::Result<()> {
    let mut labeled = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open training data {}", args.data.display()))?;
    if !args.classes.is_empty() {
        labeled = labeled.with_classes(&args.classes)?;
    }
    let pool = match &args.unlabeled {
        Some(dir) => Some(
            open_dataset(dir, &OpenOptions::default())
                .with_context(|| format!("cannot open unlabeled pool {}", dir.display()))?,
        ),
        None => None,
    };
    let config = config(global, &args, labeled.classes.len())?;
    let size = config.model.sample_size.map(|s| s.hw()).unwrap_or((32, 32));
    if !global.quiet {
        eprintln!(
            "loading {} labeled + {} unlabeled images at {}x{}",
            labeled.len(),
            pool.as_ref().map_or(0, |p| p.len()),
            size.0,
            size.1
        );
    }
    let images = TrainImages::load(&labeled, pool.as_ref(), size, &Limits::default())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    record_classes(&args.out, &labeled.classes)?;
    let budget = Budget {
        deadline: args
            .max_minutes
            .map(|m| Instant::now() + Duration::from_secs_f64(m * 60.0)),
        max_steps: None,
    };
    let bar = progress::bar(config.total_steps, "steps", global.quiet);
    let mut first = true;
    let summary = train(
        &config,
        &images,
        &args.out,
        budget,
        &mut |step, loss, rate| {
            if std::mem::take(&mut first) {
                bar.resume_at(step.saturating_sub(1));
            }
            bar.set(step, format!("loss {loss:.4}, {rate:.1} img/s"));
        },
    )?;
    bar.finish();
    let model_dir = args.out.join("model");
    super::export::export(&args.out, &model_dir, !args.f32)?;
    std::fs::write(
        args.out.join("train-summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    if !global.quiet {
        println!(
            "steps {}..{} in {:.0} s ({:.1} images/s); EMA model -> {}",
            summary.start_step,
            summary.end_step,
            summary.seconds,
            summary.images_per_second,
            model_dir.display()
        );
    }
    Ok(())
}

/// Writes the run's class names (label order) for `export`, or checks that a resumed
/// run trains the same classes.
fn record_classes(run: &Path, classes: &[String]) -> anyhow::Result<()> {
    let path = run.join(CLASSES_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let recorded: Vec<String> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON list of class names", path.display()))?;
        if recorded != classes {
            return Err(UsageError(format!(
                "{}: this run trains classes {}, not {}; resume with the same data and \
                 --classes, or train into another --out",
                path.display(),
                recorded.join(","),
                classes.join(",")
            ))
            .into());
        }
        return Ok(());
    }
    publish(&path, &serde_json::to_vec(classes)?)?;
    Ok(())
}

fn config(global: &Global, args: &TrainArgs, classes: usize) -> anyhow::Result<FlowTrainConfig> {
    let mut model = UNet2DConfig::preset(&args.preset)
        .map_err(|e| UsageError(format!("--preset {}: {e}", args.preset)))?;
    model.num_class_embeds = Some(classes + 1);
    let sigma_sampling = match args.sigma_sampling.as_str() {
        "logit-normal" => SigmaSampling::LogitNormal {
            mean: 0.0,
            std: 1.0,
        },
        "uniform" => SigmaSampling::Uniform,
        other => {
            return Err(UsageError(format!(
                "--sigma-sampling {other}: expected logit-normal or uniform"
            ))
            .into())
        }
    };
    let mut config = FlowTrainConfig::new(model);
    config.batch_size = args.batch;
    config.learning_rate = args.lr;
    config.total_steps = args.steps;
    config.warmup_steps = args.warmup;
    config.checkpoint_every = args.checkpoint_every;
    config.sigma_sampling = sigma_sampling;
    config.label_dropout = args.label_dropout;
    config.ema_decay = args.ema_decay;
    config.seed = global.seed;
    config.validate().map_err(|e| UsageError(e.to_string()))?;
    Ok(config)
}
