//! Colours and sizes shared by every chart.
//!
//! The series palette is Okabe & Ito's, ordered so the first colours stay apart for
//! readers with any common colour-vision deficiency; its yellow is last, since it is
//! faint on white. Sizes grow with the image so a large chart is not all margins.

use image::Rgb;

/// Series colours, used in order and then repeated.
pub const PALETTE: [Rgb<u8>; 8] = [
    Rgb([0, 114, 178]),   // blue
    Rgb([213, 94, 0]),    // vermillion
    Rgb([0, 158, 115]),   // bluish green
    Rgb([230, 159, 0]),   // orange
    Rgb([204, 121, 167]), // reddish purple
    Rgb([86, 180, 233]),  // sky blue
    Rgb([0, 0, 0]),       // black
    Rgb([240, 228, 66]),  // yellow
];

/// The `i`-th palette colour, wrapping around.
pub fn palette_color(i: usize) -> Rgb<u8> {
    PALETTE[i % PALETTE.len()]
}

pub(crate) const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
pub(crate) const INK: Rgb<u8> = Rgb([34, 34, 34]);
pub(crate) const AXIS: Rgb<u8> = Rgb([90, 90, 90]);
pub(crate) const MUTED: Rgb<u8> = Rgb([120, 120, 120]);
pub(crate) const GRID: Rgb<u8> = Rgb([225, 225, 225]);
pub(crate) const GRID_MINOR: Rgb<u8> = Rgb([242, 242, 242]);

/// Weight of a series colour in its shaded interval band.
pub(crate) const BAND_ALPHA: f64 = 0.2;

/// Sizes in pixels for one chart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    /// Font scale of tick labels, axis labels and the legend.
    pub scale: u32,
    /// Font scale of the title.
    pub title_scale: u32,
    pub line_width: f64,
    pub marker_radius: f64,
    /// Space around and between the chart's parts.
    pub pad: i64,
    pub tick_len: i64,
}

impl Style {
    /// Sizes for a `width` x `height` image: 1x text below 400 px, 2x up to 1600, 3x above.
    pub fn for_size(width: u32, height: u32) -> Style {
        let short = width.min(height);
        let scale = match short {
            0..=399 => 1,
            400..=1599 => 2,
            _ => 3,
        };
        let s = f64::from(scale);
        Style {
            scale,
            title_scale: scale + 1,
            line_width: 1.25 + 0.75 * s,
            marker_radius: 1.5 + 1.25 * s,
            pad: 4 + 4 * i64::from(scale),
            tick_len: 2 + 2 * i64::from(scale),
        }
    }

    /// Height of one line of text at the label scale.
    pub fn line_h(&self) -> i64 {
        i64::from(super::text::text_height(self.scale))
    }
}
