//! The demo grid: every family of the paper applied to a few images, side by side.
//!
//! Rows are images; columns are the source, two perturbation strengths, two splice
//! strengths, foreground and background inpainting, a composed sample and a classical
//! augmentation. Each cell is enlarged by nearest-neighbour so 32 px images can be seen.

use candle_core::{Device, Tensor};
use image::{GrayImage, Rgb, RgbImage};
use serde::Serialize;

use semaug_core::seeds::{label, Stream};
use semaug_core::{Condition, Generator};
use semaug_data::augment::Classical;
use semaug_data::image_io::{images_to_tensor, tensor_to_images};
use semaug_data::mask;

use crate::generative::{auto_dilation, inpaint, perturb, splice, InpaintConfig, OpError, Region};
use crate::method::{Method, Recipe};

/// One row of the demo.
#[derive(Debug, Clone)]
pub struct DemoImage {
    pub name: String,
    pub image: RgbImage,
    pub mask: Option<GrayImage>,
    pub condition: Condition,
}

/// A column: its title and the exact method spec that made it.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub title: String,
    pub spec: String,
}

#[derive(Debug)]
pub struct Demo {
    pub grid: RgbImage,
    pub columns: Vec<Column>,
    /// Every cell at the generator's resolution, `cells[row][column]`.
    pub cells: Vec<Vec<RgbImage>>,
}

const SCALE: u32 = 4;
const GAP: u32 = 4;

/// The columns after the source, as (title, spec): specs parse with [`Method::parse`].
pub fn column_specs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("perturb delta 0.5", "perturb:delta=0.5,steps=10"),
        ("perturb delta 0.7", "perturb:delta=0.7,steps=10"),
        ("splice 0.4", "splice:strength=0.4,steps=10,guidance=2"),
        ("splice 0.7", "splice:strength=0.7,steps=10,guidance=2"),
        (
            "inpaint foreground",
            "inpaint:region=foreground,dilate=1,steps=10,guidance=2",
        ),
        (
            "inpaint background",
            "inpaint:region=background,dilate=1,steps=10,guidance=2",
        ),
        (
            "compose 4 levels",
            "compose:levels=4,p=0.25,0.25,0.25,0.25,steps=10,guidance=2",
        ),
        ("classical", "classical:crop=4,flip,jitter"),
    ]
}

/// Render the demo grid for `rows` with `generator`, all randomness from `seed`.
pub fn render<G: Generator + ?Sized>(
    generator: &G,
    rows: &[DemoImage],
    seed: u64,
) -> Result<Demo, OpError> {
    let (h, w) = generator.info().image_size;
    let sources: Vec<RgbImage> = rows
        .iter()
        .map(|r| {
            image::imageops::resize(
                &r.image,
                w as u32,
                h as u32,
                image::imageops::FilterType::Lanczos3,
            )
        })
        .collect();
    let x0 = generator.encode(&images_to_tensor(&sources, &Device::Cpu)?)?;
    let conditions: Vec<Condition> = rows.iter().map(|r| r.condition.clone()).collect();
    let mut columns = vec![Column {
        title: "source".into(),
        spec: "-".into(),
    }];
    let mut results: Vec<Vec<RgbImage>> = vec![sources.clone()];
    for (k, (title, spec)) in column_specs().into_iter().enumerate() {
        let method = Method::parse(spec)
            .map_err(|e| crate::generative::invalid("demo spec", e, "a valid spec"))?;
        let noise = noise_for(seed, k, &x0, rows.len())?;
        let out = match &method {
            Method::Classical { pipeline, .. } => classical(pipeline, &sources, seed, k),
            Method::Inpaint(config) => {
                let masks = rows
                    .iter()
                    .map(|r| region(r, config, w as u32, h as u32))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let m = Tensor::cat(&masks, 0)?;
                decode(
                    generator,
                    &inpaint(generator, &x0, &m, &conditions, config, &noise)?,
                )?
            }
            Method::Compose(_) => {
                // One level drawn per row, exactly as `augment` would.
                let mut row_out = Vec::new();
                for (i, r) in rows.iter().enumerate() {
                    let mut rng = Stream::new(seed, i as u64, label("demo/compose"), 0);
                    let x = x0.narrow(0, i, 1)?;
                    let n = noise.narrow(0, i, 1)?;
                    let c = [r.condition.clone()];
                    let y = match method.recipe(&mut rng) {
                        Recipe::Splice(cfg) => splice(generator, &x, &c, &cfg, &n)?,
                        Recipe::Perturb(cfg) => perturb(generator, &x, &c, &cfg, &n)?,
                        _ => x,
                    };
                    row_out.extend(decode(generator, &y)?);
                }
                row_out
            }
            Method::Perturb(config) => decode(
                generator,
                &perturb(generator, &x0, &conditions, config, &noise)?,
            )?,
            Method::Splice { config, .. } => decode(
                generator,
                &splice(generator, &x0, &conditions, config, &noise)?,
            )?,
            Method::DaFusion { .. } => unreachable!("not a demo column"),
        };
        columns.push(Column {
            title: title.to_string(),
            spec: spec.to_string(),
        });
        results.push(out);
    }
    let cells: Vec<Vec<RgbImage>> = (0..rows.len())
        .map(|r| results.iter().map(|col| col[r].clone()).collect())
        .collect();
    Ok(Demo {
        grid: tile(&cells, w as u32, h as u32),
        columns,
        cells,
    })
}

fn noise_for(seed: u64, column: usize, x0: &Tensor, rows: usize) -> candle_core::Result<Tensor> {
    let shape: Vec<usize> = std::iter::once(1)
        .chain(x0.dims()[1..].iter().copied())
        .collect();
    let parts = (0..rows)
        .map(|i| {
            Stream::new(seed, i as u64, label("demo/noise"), column as u64)
                .normal_tensor(shape.as_slice(), &Device::Cpu)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)?.to_dtype(x0.dtype())
}

fn classical(
    pipeline: &Classical,
    sources: &[RgbImage],
    seed: u64,
    column: usize,
) -> Vec<RgbImage> {
    sources
        .iter()
        .enumerate()
        .map(|(i, img)| {
            pipeline.apply(
                img,
                &mut Stream::new(seed, i as u64, label("demo/classical"), column as u64),
            )
        })
        .collect()
}

fn decode<G: Generator + ?Sized>(generator: &G, x: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    tensor_to_images(&generator.decode(x)?)
}

/// The region to regenerate: the row's mask, or a central box over half of each side.
fn region(row: &DemoImage, config: &InpaintConfig, w: u32, h: u32) -> candle_core::Result<Tensor> {
    let object = match &row.mask {
        Some(m) => mask::threshold(&mask::resize_nearest(m, w, h), 128),
        None => mask::central_box(w, h, 0.5),
    };
    let grown = mask::dilate(
        &object,
        config.dilate.unwrap_or_else(|| auto_dilation(w, h)),
    );
    let region = match config.region {
        Region::Foreground => grown,
        Region::Background => mask::invert(&grown),
    };
    mask::to_tensor(&region, &Device::Cpu)
}

/// Lay `cells[row][column]` out on a white sheet, each enlarged `SCALE` times.
pub fn tile(cells: &[Vec<RgbImage>], w: u32, h: u32) -> RgbImage {
    let cols = cells.first().map_or(0, Vec::len) as u32;
    let (cw, ch) = (w * SCALE, h * SCALE);
    let mut sheet = RgbImage::from_pixel(
        GAP + cols * (cw + GAP),
        GAP + cells.len() as u32 * (ch + GAP),
        Rgb([255, 255, 255]),
    );
    for (r, row) in cells.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let big = image::imageops::resize(cell, cw, ch, image::imageops::FilterType::Nearest);
            let x = GAP + c as u32 * (cw + GAP);
            let y = GAP + r as u32 * (ch + GAP);
            image::imageops::overlay(&mut sheet, &big, x as i64, y as i64);
        }
    }
    sheet
}
