//! `semaug sample`: a grid of class-conditional samples from noise.

use semaug_core::{Condition, Generator, Solver};
use semaug_data::image_io::encode_png;
use semaug_data::writer::atomic::publish;
use semaug_ops::demo::tile;
use semaug_ops::generative::Sampling;
use semaug_ops::sample::sample_rows;

use super::model;
use crate::cli::{Global, SampleArgs};
use crate::UsageError;

pub fn run(global: &Global, args: SampleArgs) -> anyhow::Result<()> {
    let generator = model::load(&args.model)?;
    let solver: Solver = args
        .solver
        .parse()
        .map_err(|e| UsageError(format!("--solver {}: {e}", args.solver)))?;
    let sampling = Sampling {
        steps: args.steps,
        solver,
        guidance: args.guidance,
    };
    sampling.validate().map_err(|e| UsageError(e.to_string()))?;
    let rows: Vec<Condition> = (0..generator.classes.len()).map(Condition::Class).collect();
    let cells = sample_rows(&generator, &rows, args.per_class, &sampling, global.seed)?;
    let (h, w) = generator.info().image_size;
    publish(&args.out, &encode_png(&tile(&cells, w as u32, h as u32))?)?;
    if !global.quiet {
        println!("rows (top to bottom): {}", generator.classes.join(", "));
        println!("samples: {}", args.out.display());
    }
    Ok(())
}
