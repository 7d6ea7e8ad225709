//! `semaug info DATA`: classes, counts, image sizes, masks, unreadable files.

use anyhow::Context;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::image_io::Limits;

use crate::cli::{Global, InfoArgs};

pub fn run(_global: &Global, args: InfoArgs) -> anyhow::Result<()> {
    let options = OpenOptions {
        // `info` describes what is there, bad files included, instead of stopping.
        lenient: true,
        masks: args.masks.clone(),
    };
    let mut dataset = open_dataset(&args.data, &options)
        .with_context(|| format!("cannot open dataset {}", args.data.display()))?;
    if args.check {
        let bad = dataset.check(&Limits::default());
        dataset.remove_skipped(bad);
    }
    let summary = dataset.summary();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(())
}
