//! Line charts: training-loss curves, accuracy against shots or synthetic fraction, each
//! series optionally with a shaded interval band (e.g. a 95% confidence interval).
//!
//! Points are drawn in the order given. A point that cannot be placed (NaN, infinite,
//! or not positive on a log axis) breaks the line there rather than being bridged, so
//! a gap in the data shows as a gap. Series with few points get markers, and a point
//! with no neighbour always does, so a single measurement is never invisible.

use image::{Rgb, RgbImage};

use super::canvas::{Canvas, Rect};
use super::frame::{self, Frame};
use super::legend::{draw_legend, Entry};
use super::style::{palette_color, Style, BACKGROUND, BAND_ALPHA};
use super::text::text_width;
use super::ticks::AxisKind;

/// Series with at most this many points are drawn with a marker at each point.
const MARKER_MAX_POINTS: usize = 30;

/// Longest side of a rendered chart, in pixels; larger requests are clamped to it.
pub const MAX_SIDE: u32 = 8192;

/// One curve of a [`LineChart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Shown in the legend; an empty name leaves the series out of it.
    pub name: String,
    /// (x, y) points, joined in this order.
    pub points: Vec<(f64, f64)>,
    /// (x, lo, hi) interval, shaded between lo and hi in the series colour.
    pub band: Option<Vec<(f64, f64, f64)>>,
    /// `None` takes the palette colour for the series' position.
    pub color: Option<Rgb<u8>>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            band: None,
            color: None,
        }
    }

    /// The same series with a shaded (x, lo, hi) band.
    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = Some(band);
        self
    }

    /// The same series in `color` instead of its palette colour.
    pub fn with_color(mut self, color: Rgb<u8>) -> Self {
        self.color = Some(color);
        self
    }
}

/// A chart of [`Series`] against shared x and y axes.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic x axis (ticks at powers of ten); points with x <= 0 are skipped.
    pub log_x: bool,
    /// Logarithmic y axis (ticks at powers of ten); points with y <= 0 are skipped.
    pub log_y: bool,
    /// Image size in pixels (each side clamped to [`MAX_SIDE`]).
    pub width: u32,
    pub height: u32,
}

impl Default for LineChart {
    fn default() -> Self {
        LineChart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            log_x: false,
            log_y: false,
            width: 800,
            height: 500,
        }
    }
}

impl LineChart {
    /// An 800 x 500 chart with these labels and no series yet.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LineChart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Self::default()
        }
    }

    /// The chart as an image of the requested size.
    pub fn render(&self) -> RgbImage {
        let (w, h) = (self.width.min(MAX_SIDE), self.height.min(MAX_SIDE));
        let mut img = RgbImage::from_pixel(w, h, BACKGROUND);
        let style = Style::for_size(w, h);
        let top = frame::draw_title(&mut img, &style, &self.title);
        let Some(frame) = self.layout(&img, &style, top) else {
            return img;
        };
        frame::draw_grid(&mut img, &frame);
        let colors: Vec<Rgb<u8>> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| s.color.unwrap_or_else(|| palette_color(i)))
            .collect();
        let mut occupied = Vec::new();
        for (s, &color) in self.series.iter().zip(&colors) {
            draw_band(&mut img, &frame, s, color, &mut occupied);
        }
        let mut any = false;
        for (s, &color) in self.series.iter().zip(&colors) {
            any |= draw_series(&mut img, &frame, &style, s, color, &mut occupied);
        }
        frame::draw_y_axis(&mut img, &frame, &style, &self.y_label);
        frame::draw_x_axis(&mut img, &frame, &style, &self.x_label);
        if !any && occupied.is_empty() {
            frame::draw_no_data(&mut img, &frame, &style);
        }
        draw_legend(
            &mut img,
            frame.plot,
            &style,
            &self.legend_entries(&colors),
            &occupied,
        );
        img
    }

    /// Plot rectangle and axes for an image with content starting at row `top`;
    /// `None` when the image is too small to hold a plot.
    fn layout(&self, img: &RgbImage, style: &Style, top: i64) -> Option<Frame> {
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        let inset = (style.marker_radius + style.line_width).ceil() + 1.0;
        let bottom = h - frame::x_axis_height(style, &self.x_label, style.line_h());
        let (x_lo, x_hi) = extent(self.x_values(), self.log_x);
        let (y_lo, y_hi) = extent(self.y_values(), self.log_y);
        let kind = |log: bool| if log { AxisKind::Log } else { AxisKind::Snug };
        let plot_h = bottom - top - 2 * inset as i64;
        let y = frame::fit_y_axis(y_lo, y_hi, kind(self.log_y), plot_h, style);
        let left = frame::y_axis_width(&y, style, &self.y_label);
        let fit_x = |right: i64| {
            let len = right - left - 2 * inset as i64;
            frame::fit_x_axis(x_lo, x_hi, kind(self.log_x), len, style)
        };
        // The last x label is centred on the last tick, `inset` px inside the plot's
        // right edge: leave room for its right half.
        let last_label = fit_x(w - style.pad).major.last().map(|(_, l)| l.clone());
        let half = last_label.map_or(0, |l| i64::from(text_width(style.scale, &l)) / 2);
        let right = (w - style.pad).min(w - 2 - half + inset as i64);
        if right - left < 16 || bottom - top < 16 {
            return None;
        }
        let x = fit_x(right);
        let plot = Rect::new(left, top, right, bottom);
        Some(Frame {
            plot,
            inset,
            x: Some(x),
            y,
        })
    }

    fn x_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series.iter().flat_map(|s| {
            let band = s.band.iter().flatten().map(|b| b.0);
            s.points.iter().map(|p| p.0).chain(band)
        })
    }

    fn y_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.series.iter().flat_map(|s| {
            let band = s.band.iter().flatten().flat_map(|b| [b.1, b.2]);
            s.points.iter().map(|p| p.1).chain(band)
        })
    }

    fn legend_entries(&self, colors: &[Rgb<u8>]) -> Vec<Entry> {
        self.series
            .iter()
            .zip(colors)
            .filter(|(s, _)| !s.name.trim().is_empty())
            .map(|(s, &color)| Entry {
                name: s.name.clone(),
                color,
                marker: s.points.len() <= MARKER_MAX_POINTS,
                band: s.band.as_ref().is_some_and(|b| !b.is_empty()),
            })
            .collect()
    }
}

/// Smallest and largest plottable value (finite, and positive on a log axis); a
/// default range when there are none.
fn extent(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let ok = |v: &f64| v.is_finite() && (!log || *v > 0.0);
    let (lo, hi) = values
        .filter(ok)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    match (lo.is_finite(), log) {
        (true, _) => (lo, hi),
        (false, true) => (1.0, 10.0),
        (false, false) => (0.0, 1.0),
    }
}

/// Shade `s`'s band column by column between its lo and hi edges, interpolated
/// linearly in pixel space between the band's samples (sorted by x).
fn draw_band(
    img: &mut RgbImage,
    frame: &Frame,
    s: &Series,
    color: Rgb<u8>,
    occupied: &mut Vec<(f64, f64)>,
) {
    let Some(band) = &s.band else { return };
    let mut px: Vec<(f64, f64, f64)> = band
        .iter()
        .filter_map(|&(x, lo, hi)| Some((frame.px(x)?, frame.py(lo)?, frame.py(hi)?)))
        .collect();
    px.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut c = Canvas::new(img);
    c.clipped(frame.plot, |c| {
        for w in px.windows(2) {
            let (a, b) = (w[0], w[1]);
            let first = a.0.round() as i64;
            for col in first..b.0.round() as i64 {
                let t = if b.0 > a.0 {
                    ((col as f64 + 0.5 - a.0) / (b.0 - a.0)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let y_a = a.1 + t * (b.1 - a.1);
                let y_b = a.2 + t * (b.2 - a.2);
                let (top, bottom) = (y_a.min(y_b).round() as i64, y_a.max(y_b).round() as i64);
                c.fill(
                    Rect::new(col, top, col + 1, bottom.max(top + 1)),
                    color,
                    BAND_ALPHA,
                );
                if (col - first) % 4 == 0 {
                    occupied.extend([(col as f64, top as f64), (col as f64, bottom as f64)]);
                }
            }
        }
    });
}

/// Stroke `s` as polylines broken at unplaceable points, with markers when it has few
/// points and on isolated points. Returns whether anything was drawn.
fn draw_series(
    img: &mut RgbImage,
    frame: &Frame,
    style: &Style,
    s: &Series,
    color: Rgb<u8>,
    occupied: &mut Vec<(f64, f64)>,
) -> bool {
    let runs = placed_runs(frame, &s.points);
    let markers = s.points.len() <= MARKER_MAX_POINTS;
    let mut c = Canvas::new(img);
    c.clipped(frame.plot, |c| {
        for run in &runs {
            for w in run.windows(2) {
                c.line(w[0], w[1], style.line_width, color);
                sample_segment(w[0], w[1], occupied);
            }
            if markers || run.len() == 1 {
                for &p in run {
                    c.disc(p, style.marker_radius, color);
                    occupied.push(p);
                }
            }
        }
    });
    !runs.is_empty()
}

/// Runs of consecutive points that map to pixels, split where one does not.
fn placed_runs(frame: &Frame, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        match (frame.px(x), frame.py(y)) {
            (Some(px), Some(py)) => runs.last_mut().map_or((), |r| r.push((px, py))),
            _ => runs.push(Vec::new()),
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Points every few pixels along a segment, for the legend to steer clear of.
fn sample_segment(a: (f64, f64), b: (f64, f64), out: &mut Vec<(f64, f64)>) {
    let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let n = (len / 4.0).ceil().clamp(1.0, 4096.0) as usize;
    out.extend((0..=n).map(|i| {
        let t = i as f64 / n as f64;
        (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
    }));
}
