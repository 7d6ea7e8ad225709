//! `semaug split`: labeled subset, validation set and unlabeled pool, by seed.

use anyhow::Context;
use semaug_data::dataset::{open_dataset, OpenOptions};

use crate::cli::{Global, SplitArgs};
use crate::UsageError;

pub fn run(global: &Global, args: SplitArgs) -> anyhow::Result<()> {
    if !(args.fraction > 0.0 && args.fraction <= 1.0) {
        return Err(UsageError(format!("--fraction {} must be in (0, 1]", args.fraction)).into());
    }
    let data = open_dataset(&args.data, &OpenOptions::default())
        .with_context(|| format!("cannot open dataset {}", args.data.display()))?;
    let labeled = match args.shots {
        Some(k) => data.subset_k_shot(k, global.seed, args.lenient)?,
        None => data.subset_fraction(args.fraction, global.seed)?,
    };
    let rest = data.exclude(labeled.ids());
    let val = if args.val_per_class > 0 {
        rest.subset_k_shot(args.val_per_class, global.seed, args.lenient)?
    } else {
        rest.filter(|_| false)
    };
    let pool = rest.exclude(val.ids());
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
