//! `semaug split`: labeled subset, validation set and unlabeled pool, by seed.

use anyhow::Context;
use semaug_data::dataset::{carve, open_dataset, CarveSpec, Carved, Labeled, OpenOptions};

use crate::cli::{Global, SplitArgs};
use crate::UsageError;

pub fn run(global: &Global, args: SplitArgs) -> anyhow::Result<()> {
    if !(args.fraction > 0.0 && args.fraction <= 1.0) {
        return Err(UsageError(format!("--fraction {} must be in (0, 1]", args.fraction)).into());
    }
    let data = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open dataset {}", args.data.display()))?;
    let spec = CarveSpec {
        labeled: match args.shots {
            Some(k) => Labeled::Shots(k),
            None => Labeled::Fraction(args.fraction),
        },
        val_per_class: args.val_per_class,
        seed: global.seed,
        lenient: args.lenient,
    };
    let Carved { labeled, val, pool } = carve(&data, &spec)?;
    let mut parts = vec![("labeled", &labeled, true), ("val", &val, true)];
    if args.pool {
        parts.push(("pool", &pool, false));
    }
    for (name, part, keep_labels) in parts {
        let dir = args.out.join(name);
        let n = part.materialize(&dir, keep_labels)?;
        if !global.quiet {
            println!("{name:8} {n:6} images -> {}", dir.display());
        }
    }
    if !args.pool && !global.quiet {
        println!("pool     {:6} images (not written; add --pool)", pool.len());
    }
    Ok(())
}
