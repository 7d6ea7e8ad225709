//! Charts as images, drawn with no plotting library and no font file: line charts
//! (training curves, accuracy against shots or synthetic fraction, with shaded interval
//! bands, linear or log axes) and bar charts (methods side by side, with error bars).
//!
//! Principal types: [`LineChart`] with [`Series`], and [`BarChart`] with [`Bar`]; each
//! `render`s to an `image::RgbImage` of the requested size. Text uses the project's own
//! 5x9 bitmap font ([`text`], [`text_width`]) at integer scales. Colours come from the
//! Okabe-Ito palette ([`PALETTE`]), which stays distinguishable with colour-vision
//! deficiencies. To save a chart, encode it with [`crate::image_io::encode_png`] and
//! publish it with [`crate::writer::atomic::publish`].
//!
//! Key decision: bad input degrades, it never panics. Non-finite points are skipped (a
//! line breaks there), a flat or single-point range is widened, an empty chart says
//! "no data", labels that do not fit are wrapped, shrunk or cut with `..`.

mod bar;
mod canvas;
mod font;
mod frame;
mod legend;
mod line;
mod style;
mod text;
pub mod ticks;

pub use bar::{Bar, BarChart};
pub use font::glyph_rows;
pub use line::{LineChart, Series, MAX_SIDE};
pub use style::{palette_color, PALETTE};
pub use text::{text, text_height, text_width};
