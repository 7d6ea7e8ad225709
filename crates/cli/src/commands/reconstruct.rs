//! `semaug reconstruct`: round-trip PSNR of a model per solver and NFE.

use anyhow::Context;
use candle_core::Device;
use semaug_core::{Condition, Solver};
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::{images_to_tensor, Limits};
use semaug_ops::reconstruct::{round_trip, summarize};

use super::model;
use crate::cli::{Global, ReconstructArgs};
use crate::progress;
use crate::UsageError;

pub fn run(global: &Global, args: ReconstructArgs) -> anyhow::Result<()> {
    let mut model = model::load(&args.generator)?;
    let mut data = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open dataset {}", args.data.display()))?;
    if let Some(limit) = args.limit {
        let per_class = limit.div_ceil(data.classes.len().max(1));
        data = data.subset_k_shot(per_class, global.seed, true)?;
        data.samples.truncate(limit);
    }
    let by_class = model.conditions(&data.classes, global.quiet);
    let generator = model.generator();
    let (h, w) = semaug_core::Generator::info(&generator).image_size;
    let images = data
        .samples
        .iter()
        .map(|s| {
            let image = s.load_image(&Limits::default())?;
            Ok(image::imageops::resize(
                &image,
                w as u32,
                h as u32,
                image::imageops::FilterType::Lanczos3,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conditions: Vec<Condition> = data
        .samples
        .iter()
        .map(|s| s.class.map_or(Condition::Null, |c| by_class[c].clone()))
        .collect();
    let settings = settings(&args)?;
    let bar = progress::bar(
        (settings.len() * images.len()) as u64,
        "round trips",
        global.quiet || args.json,
    );
    let mut rows = Vec::new();
    for (solver, steps) in settings {
        let mut mses = Vec::with_capacity(images.len());
        let mut nfe = 0;
        for (chunk, conds) in images
            .chunks(args.batch.max(1))
            .zip(conditions.chunks(args.batch.max(1)))
        {
            let x = images_to_tensor(chunk, &Device::Cpu)?;
            let (batch_mses, n) = round_trip(&generator, &x, conds, &solver, steps)?;
            mses.extend(batch_mses);
            nfe = n;
            bar.inc(chunk.len() as u64);
        }
        let row = summarize(&solver, steps, nfe, &mses);
        if args.json {
            println!("{}", serde_json::to_string(&row)?);
        }
        rows.push(row);
    }
    bar.finish();
    if !args.json {
        println!(
            "{:<10} {:>6} {:>5} {:>12} {:>10}",
            "solver", "steps", "NFE", "MSE", "PSNR dB"
        );
        for r in &rows {
            println!(
                "{:<10} {:>6} {:>5} {:>12.3e} {:>10.2}",
                r.solver, r.steps, r.nfe, r.mse, r.mean_psnr_db
            );
        }
        println!(
            "({} images from {}, model {})",
            images.len(),
            args.data.display(),
            args.generator.model
        );
    }
    Ok(())
}

/// (solver, steps) pairs: every solver at every NFE budget (or exact step count).
fn settings(args: &ReconstructArgs) -> anyhow::Result<Vec<(Solver, usize)>> {
    let names = if args.solver.is_empty() {
        vec!["euler".to_string(), "heun".into(), "rk4".into()]
    } else {
        args.solver.clone()
    };
    let nfes = if args.nfe.is_empty() {
        vec![10, 20, 50]
    } else {
        args.nfe.clone()
    };
    let mut out = Vec::new();
    for name in &names {
        let solver: Solver = name
            .parse()
            .map_err(|e| UsageError(format!("--solver {name}: {e}")))?;
        if !args.steps.is_empty() {
            out.extend(args.steps.iter().map(|s| (solver, *s)));
            continue;
        }
        let per_step = solver.nfe_per_step().ok_or_else(|| {
            UsageError(format!(
                "--solver {name} is adaptive: give --steps, not --nfe"
            ))
        })?;
        out.extend(nfes.iter().map(|n| (solver, (n / per_step).max(1))));
    }
    Ok(out)
}
