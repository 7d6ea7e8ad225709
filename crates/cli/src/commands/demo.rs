//! `semaug demo`: the README's main job. Runs every augmentation family of the paper
//! with the shipped model on images bundled in the binary and writes a grid PNG and an
//! HTML report that explains it.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use semaug_core::Generator;
use semaug_data::image_io::{decode_bytes, encode_png, Limits};
use semaug_data::writer::atomic::publish;
use semaug_ops::demo::{render, Demo, DemoImage};

use super::model;
use crate::cli::{DemoArgs, Global};

/// CIFAR-10 validation images (never trained on), one per class, named by class.
const BUNDLED: [(&str, &[u8]); 8] = [
    (
        "airplane",
        include_bytes!("../../../../assets/demo/airplane.jpg"),
    ),
    (
        "automobile",
        include_bytes!("../../../../assets/demo/automobile.jpg"),
    ),
    ("bird", include_bytes!("../../../../assets/demo/bird.jpg")),
    ("cat", include_bytes!("../../../../assets/demo/cat.jpg")),
    ("deer", include_bytes!("../../../../assets/demo/deer.jpg")),
    ("dog", include_bytes!("../../../../assets/demo/dog.jpg")),
    ("horse", include_bytes!("../../../../assets/demo/horse.jpg")),
    ("ship", include_bytes!("../../../../assets/demo/ship.jpg")),
];

pub fn run(global: &Global, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut model = model::load(&args.generator)?;
    let names: Vec<String> = BUNDLED.iter().map(|(name, _)| name.to_string()).collect();
    let conditions = model.conditions(&names, true);
    let generator = model.generator();
    let rows = BUNDLED
        .iter()
        .zip(conditions)
        .map(|((name, bytes), condition)| {
            let image = decode_bytes(bytes, Path::new(name), &Limits::default())?;
            Ok(DemoImage {
                name: name.to_string(),
                image,
                mask: None,
                condition,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !global.quiet {
        eprintln!(
            "running 8 augmentations on {} images with model `{}`...",
            rows.len(),
            args.generator.model
        );
    }
    let demo = render(&generator, &rows, global.seed).context("demo generation failed")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let grid = args.out.join("grid.png");
    publish(&grid, &encode_png(&demo.grid)?)?;
    let cells = args.out.join("cells");
    std::fs::create_dir_all(&cells)
        .with_context(|| format!("cannot create {}", cells.display()))?;
    for (r, row) in demo.cells.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            publish(&cells.join(format!("r{r}c{c}.png")), &encode_png(cell)?)?;
        }
    }
    let report = args.out.join("index.html");
    let seconds = started.elapsed().as_secs_f64();
    publish(
        &report,
        html(&demo, &rows, &generator, global.seed, seconds).as_bytes(),
    )?;
    if !global.quiet {
        println!("grid:   {}", grid.display());
        println!("report: {}", report.display());
        println!("({seconds:.0} s)");
    }
    Ok(())
}

fn html(
    demo: &Demo,
    rows: &[DemoImage],
    generator: &dyn Generator,
    seed: u64,
    seconds: f64,
) -> String {
    let info = generator.info();
    let header: String = demo
        .columns
        .iter()
        .map(|c| {
            format!(
                "<th>{}<br><code>{}</code></th>",
                escape(&c.title),
                escape(&c.spec)
            )
        })
        .collect();
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let cells: String = (0..demo.columns.len())
                .map(|c| format!(r#"<td><img src="cells/r{r}c{c}.png" alt=""></td>"#))
                .collect();
            let label = format!(
                "{}<br><small>{}</small>",
                escape(&row.name),
                escape(&row.condition.to_string())
            );
            format!("<tr><th>{label}</th>{cells}</tr>\n")
        })
        .collect();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>semaug demo</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:2em auto}}
table{{border-collapse:collapse;font-size:12px}}th{{padding:4px;vertical-align:bottom}}
img{{image-rendering:pixelated;width:128px;height:128px}}code{{font-size:11px}}</style></head>
<body>
<h1>semaug demo</h1>
<p>Rows: bundled CIFAR-10 validation images. Columns: the source, then each augmentation
family of <em>Semantic Data Augmentation with Generative Models</em> applied to it with the
model <code>{model}</code> (sha256 <code>{sha}</code>), seed {seed}. Inpainting uses a central
box covering half of each side as the object mask (these images have no masks).
Every column's method spec can be passed to <code>semaug augment --method</code>.</p>
<table><tr><th></th>{header}</tr>
{body}</table>
<p>The same grid as one picture: <a href="grid.png">grid.png</a>.</p>
<p>Made in {seconds:.0} s by semaug {version}.</p>
</body></html>
"#,
        model = escape(&info.name),
        sha = info.weights_sha256.unwrap_or_default(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
