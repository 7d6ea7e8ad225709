//! The parts every chart shares: title, plot rectangle, grid, axes with ticks and
//! labels, and the mapping from data values to pixels.
//!
//! Layout runs outside in: the title fixes the top, the x-axis text fixes the bottom,
//! the widest y tick label fixes the left. Axes are fitted to the pixels they get, so
//! tick labels never overlap: the tick count drops until they fit.

use image::{Rgb, RgbImage};

use super::canvas::{Canvas, Rect};
use super::style::{Style, AXIS, GRID, GRID_MINOR, INK, MUTED};
use super::text::{text, text_height, text_up, text_width, truncate};
use super::ticks::{Axis, AxisKind};

/// The plot rectangle and the axes that map data into it.
pub(crate) struct Frame {
    pub plot: Rect,
    /// Pixels kept free inside the rectangle's edges, so strokes at the axis ends are
    /// not cut in half by the clip.
    pub inset: f64,
    pub x: Option<Axis>,
    pub y: Axis,
}

impl Frame {
    /// Pixel column of `v` on the x axis (`None` when it cannot be placed).
    pub fn px(&self, v: f64) -> Option<f64> {
        let t = self.x.as_ref()?.frac(v)?;
        Some(self.plot.x0 as f64 + self.inset + t * (self.plot.width() as f64 - 2.0 * self.inset))
    }

    /// Pixel row of `v` on the y axis (`None` when it cannot be placed).
    pub fn py(&self, v: f64) -> Option<f64> {
        let t = self.y.frac(v)?;
        Some(self.plot.y1 as f64 - self.inset - t * (self.plot.height() as f64 - 2.0 * self.inset))
    }

    /// Thickness of the axis lines.
    fn axis_w(style: &Style) -> i64 {
        i64::from(style.scale.min(2))
    }
}

/// Gap between a tick mark and its label.
fn label_gap(style: &Style) -> i64 {
    2 * i64::from(style.scale)
}

/// Draw `title` centred at the top, shrunk or cut to fit; returns the first row below it.
pub(crate) fn draw_title(img: &mut RgbImage, style: &Style, title: &str) -> i64 {
    if title.trim().is_empty() {
        return style.pad;
    }
    let room = u32::try_from(i64::from(img.width()) - 2 * style.pad).unwrap_or(0);
    let scale = (style.scale..=style.title_scale)
        .rev()
        .find(|&s| text_width(s, title) <= room)
        .unwrap_or(style.scale);
    let shown = truncate(scale, title, room);
    let x = (i64::from(img.width()) - i64::from(text_width(scale, &shown))) / 2;
    text(img, clamp_i32(x), clamp_i32(style.pad), scale, INK, &shown);
    style.pad + i64::from(text_height(scale)) + style.pad / 2
}

/// Height below the plot taken by x tick labels (`labels_h` px of text) and the
/// x-axis label.
pub(crate) fn x_axis_height(style: &Style, x_label: &str, labels_h: i64) -> i64 {
    let label = if x_label.trim().is_empty() {
        0
    } else {
        style.line_h() + style.pad / 2
    };
    Frame::axis_w(style) + style.tick_len + label_gap(style) + labels_h + label + style.pad
}

/// A y axis over `[lo, hi]` whose labels are spaced at least three text lines apart
/// over `plot_h` pixels.
pub(crate) fn fit_y_axis(lo: f64, hi: f64, kind: AxisKind, plot_h: i64, style: &Style) -> Axis {
    let max_ticks = (plot_h / (3 * style.line_h())).clamp(1, 8) as usize;
    kind.fit(lo, hi, max_ticks)
}

/// Width left of the plot taken by the y-axis label, tick labels and tick marks.
pub(crate) fn y_axis_width(axis: &Axis, style: &Style, y_label: &str) -> i64 {
    let widest = axis
        .major
        .iter()
        .map(|(_, l)| text_width(style.scale, l))
        .max()
        .unwrap_or(0);
    let label = if y_label.trim().is_empty() {
        0
    } else {
        style.line_h() + style.pad / 2
    };
    style.pad + label + i64::from(widest) + label_gap(style) + style.tick_len + Frame::axis_w(style)
}

/// An x axis over `[lo, hi]` with as many ticks as fit `plot_w` pixels without the
/// labels touching.
pub(crate) fn fit_x_axis(lo: f64, hi: f64, kind: AxisKind, plot_w: i64, style: &Style) -> Axis {
    let gap = 4.0 * f64::from(style.scale) + 4.0;
    (1..=10usize)
        .rev()
        .map(|n| kind.fit(lo, hi, n))
        .find(|axis| labels_fit(axis, plot_w, style, gap))
        .unwrap_or_else(|| kind.fit(lo, hi, 1))
}

/// Whether every pair of adjacent x labels, centred on their ticks, is `gap` px apart.
fn labels_fit(axis: &Axis, plot_w: i64, style: &Style, gap: f64) -> bool {
    let placed: Vec<(f64, f64)> = axis
        .major
        .iter()
        .filter_map(|(v, l)| {
            Some((
                axis.frac(*v)? * plot_w as f64,
                f64::from(text_width(style.scale, l)),
            ))
        })
        .collect();
    placed
        .windows(2)
        .all(|w| w[1].0 - w[0].0 >= (w[0].1 + w[1].1) / 2.0 + gap)
}

/// Grid lines across the plot at the y ticks and, when the frame has one, the x ticks.
pub(crate) fn draw_grid(img: &mut RgbImage, frame: &Frame) {
    let mut c = Canvas::new(img);
    let p = frame.plot;
    c.clipped(p, |c| {
        let rows = |vals: &mut dyn Iterator<Item = f64>| -> Vec<i64> {
            vals.filter_map(|v| frame.py(v))
                .map(|y| y.floor() as i64)
                .collect()
        };
        for y in rows(&mut frame.y.minor.iter().copied()) {
            c.fill(Rect::new(p.x0, y, p.x1, y + 1), GRID_MINOR, 1.0);
        }
        for y in rows(&mut frame.y.major.iter().map(|t| t.0)) {
            c.fill(Rect::new(p.x0, y, p.x1, y + 1), GRID, 1.0);
        }
        let Some(xa) = &frame.x else { return };
        for x in xa.minor.iter().filter_map(|&v| frame.px(v)) {
            let x = x.floor() as i64;
            c.fill(Rect::new(x, p.y0, x + 1, p.y1), GRID_MINOR, 1.0);
        }
        for x in xa.major.iter().filter_map(|t| frame.px(t.0)) {
            let x = x.floor() as i64;
            c.fill(Rect::new(x, p.y0, x + 1, p.y1), GRID, 1.0);
        }
    });
}

/// The left axis line, its ticks and labels, and the y-axis label turned upright.
pub(crate) fn draw_y_axis(img: &mut RgbImage, frame: &Frame, style: &Style, y_label: &str) {
    let p = frame.plot;
    let aw = Frame::axis_w(style);
    Canvas::new(img).fill(Rect::new(p.x0 - aw, p.y0, p.x0, p.y1 + aw), AXIS, 1.0);
    let cap = i64::from(7 * style.scale);
    for (v, label) in &frame.y.major {
        let Some(y) = frame.py(*v) else { continue };
        let row = y.floor() as i64;
        let tick = Rect::new(
            p.x0 - aw - style.tick_len,
            row - aw / 2,
            p.x0 - aw,
            row - aw / 2 + aw,
        );
        Canvas::new(img).fill(tick, AXIS, 1.0);
        let right = p.x0 - aw - style.tick_len - label_gap(style);
        let x = right - i64::from(text_width(style.scale, label));
        text(
            img,
            clamp_i32(x),
            clamp_i32(row - cap / 2),
            style.scale,
            INK,
            label,
        );
    }
    if y_label.trim().is_empty() {
        return;
    }
    let room = u32::try_from(p.height()).unwrap_or(0);
    let shown = truncate(style.scale, y_label, room);
    let y = p.y0 + (p.height() - i64::from(text_width(style.scale, &shown))) / 2;
    text_up(
        img,
        clamp_i32(style.pad),
        clamp_i32(y),
        style.scale,
        INK,
        &shown,
    );
}

/// The bottom axis line, the x ticks and labels (kept inside the image), and the
/// x-axis label centred below them.
pub(crate) fn draw_x_axis(img: &mut RgbImage, frame: &Frame, style: &Style, x_label: &str) {
    let p = frame.plot;
    let aw = Frame::axis_w(style);
    Canvas::new(img).fill(Rect::new(p.x0 - aw, p.y1, p.x1, p.y1 + aw), AXIS, 1.0);
    let top = p.y1 + aw + style.tick_len + label_gap(style);
    if let Some(axis) = &frame.x {
        for (v, label) in &axis.major {
            let Some(x) = frame.px(*v) else { continue };
            let col = x.floor() as i64;
            let tick = Rect::new(
                col - aw / 2,
                p.y1 + aw,
                col - aw / 2 + aw,
                p.y1 + aw + style.tick_len,
            );
            Canvas::new(img).fill(tick, AXIS, 1.0);
            centred_text(img, col, top, style.scale, INK, label);
        }
    }
    draw_x_label(img, p, top + style.line_h() + style.pad / 2, style, x_label);
}

/// `x_label` centred under the plot with its top at `top`.
pub(crate) fn draw_x_label(img: &mut RgbImage, p: Rect, top: i64, style: &Style, x_label: &str) {
    if x_label.trim().is_empty() {
        return;
    }
    let room = u32::try_from(i64::from(img.width()) - 2 * style.pad).unwrap_or(0);
    let shown = truncate(style.scale, x_label, room);
    centred_text(img, (p.x0 + p.x1) / 2, top, style.scale, INK, &shown);
}

/// `s` centred on column `cx` with its top at `top`, slid sideways to stay inside the image.
pub(crate) fn centred_text(
    img: &mut RgbImage,
    cx: i64,
    top: i64,
    scale: u32,
    color: Rgb<u8>,
    s: &str,
) {
    let w = i64::from(text_width(scale, s));
    let max_x = (i64::from(img.width()) - w - 1).max(0);
    let x = (cx - w / 2).clamp(0, max_x);
    text(img, clamp_i32(x), clamp_i32(top), scale, color, s);
}

/// "no data" in the middle of the plot.
pub(crate) fn draw_no_data(img: &mut RgbImage, frame: &Frame, style: &Style) {
    let p = frame.plot;
    let top = (p.y0 + p.y1) / 2 - style.line_h() / 2;
    centred_text(img, (p.x0 + p.x1) / 2, top, style.scale, MUTED, "no data");
}

pub(crate) fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}
