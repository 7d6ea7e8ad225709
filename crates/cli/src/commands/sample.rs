//! `semaug sample`: a grid of class-conditional samples from noise.

use semaug_core::{Condition, Generator};
use semaug_data::image_io::encode_png;
use semaug_data::writer::atomic::publish;
use semaug_ops::demo::tile;
use semaug_ops::sample::sample_rows;

use super::model;
use crate::cli::{Global, SampleArgs};

pub fn run(global: &Global, args: SampleArgs) -> anyhow::Result<()> {
    let mut model = model::load(&args.generator)?;
    let sampling = args.sampling.sampling()?;
    let names = if args.classes.is_empty() {
        model.loaded.class_names()
    } else {
        args.classes.clone()
    };
    let rows = if names.is_empty() {
        vec![Condition::Null]
    } else {
        model.conditions(&names, global.quiet)
    };
    let generator = model.generator();
    let cells = sample_rows(&generator, &rows, args.per_class, &sampling, global.seed)?;
    let (h, w) = generator.info().image_size;
    publish(&args.out, &encode_png(&tile(&cells, w as u32, h as u32))?)?;
    if !global.quiet {
        let names = if names.is_empty() {
            vec!["(unconditional)".to_string()]
        } else {
            names
        };
        println!("rows (top to bottom): {}", names.join(", "));
        println!("samples: {}", args.out.display());
    }
    Ok(())
}
