//! Pixel primitives clipped to a rectangle: filled and blended rectangles, thick
//! anti-aliased line segments, discs.
//!
//! Coordinates are f64 pixels with pixel (i, j) covering [i, i+1) x [j, j+1), so pixel
//! centres sit at half-integers. Every loop is bounded by the clip rectangle first, so a
//! wild coordinate costs nothing and cannot overflow.

use image::{Rgb, RgbImage};

/// A half-open pixel rectangle `[x0, x1) x [y0, y1)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rect {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Rect {
    pub fn new(x0: i64, y0: i64, x1: i64, y1: i64) -> Self {
        Rect {
            x0,
            y0,
            x1: x1.max(x0),
            y1: y1.max(y0),
        }
    }

    pub fn width(&self) -> i64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> i64 {
        self.y1 - self.y0
    }

    pub fn intersect(&self, o: &Rect) -> Rect {
        Rect::new(
            self.x0.max(o.x0),
            self.y0.max(o.y0),
            self.x1.min(o.x1),
            self.y1.min(o.y1),
        )
    }

    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x0 as f64 && x < self.x1 as f64 && y >= self.y0 as f64 && y < self.y1 as f64
    }
}

/// An image with a clip rectangle that every primitive respects.
pub(crate) struct Canvas<'a> {
    pub img: &'a mut RgbImage,
    clip: Rect,
}

impl<'a> Canvas<'a> {
    /// A canvas drawing anywhere on `img`.
    pub fn new(img: &'a mut RgbImage) -> Self {
        let clip = Rect::new(0, 0, i64::from(img.width()), i64::from(img.height()));
        Canvas { img, clip }
    }

    /// Run `draw` with drawing limited to `rect` (within the current clip).
    pub fn clipped(&mut self, rect: Rect, draw: impl FnOnce(&mut Canvas)) {
        let saved = self.clip;
        self.clip = saved.intersect(&rect);
        draw(self);
        self.clip = saved;
    }

    /// Mix `color` into pixel (x, y) with weight `alpha` in [0, 1].
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb<u8>, alpha: f64) {
        if x < self.clip.x0 || x >= self.clip.x1 || y < self.clip.y0 || y >= self.clip.y1 {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let p = self.img.get_pixel_mut(x as u32, y as u32);
        for (dst, src) in p.0.iter_mut().zip(color.0) {
            *dst = (f64::from(*dst) * (1.0 - a) + f64::from(src) * a).round() as u8;
        }
    }

    /// Fill `rect` (clipped) with `color` mixed in at weight `alpha`.
    pub fn fill(&mut self, rect: Rect, color: Rgb<u8>, alpha: f64) {
        let r = rect.intersect(&self.clip);
        for y in r.y0..r.y1 {
            for x in r.x0..r.x1 {
                self.blend(x, y, color, alpha);
            }
        }
    }

    /// A segment from `a` to `b`, `width` px thick with round caps. Edge pixels are
    /// weighted by how far their centre lies inside the stroke, a cheap anti-alias.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, color: Rgb<u8>) {
        let half = width / 2.0;
        let reach = half + 1.0;
        let r = Rect::new(
            (a.0.min(b.0) - reach).floor().max(-1.0e9) as i64,
            (a.1.min(b.1) - reach).floor().max(-1.0e9) as i64,
            (a.0.max(b.0) + reach).ceil().min(1.0e9) as i64,
            (a.1.max(b.1) + reach).ceil().min(1.0e9) as i64,
        )
        .intersect(&self.clip);
        let steep = (b.1 - a.1).abs() > (b.0 - a.0).abs();
        // Walk the long axis; across it only a band of about `reach / cos` pixels
        // around the segment can be touched, so the cost is length x width.
        let (major, minor) = if steep {
            ((r.y0, r.y1), (r.x0, r.x1))
        } else {
            ((r.x0, r.x1), (r.y0, r.y1))
        };
        let (p, q) = if steep {
            ((a.1, a.0), (b.1, b.0))
        } else {
            (a, b)
        };
        let slope = if q.0 != p.0 {
            (q.1 - p.1) / (q.0 - p.0)
        } else {
            0.0
        };
        let band = reach * (1.0 + slope * slope).sqrt() + 1.0;
        for m in major.0..major.1 {
            let mc = m as f64 + 0.5;
            let centre = p.1 + slope * (mc.clamp(p.0.min(q.0), p.0.max(q.0)) - p.0);
            let lo = ((centre - band).floor() as i64).max(minor.0);
            let hi = ((centre + band).ceil() as i64).min(minor.1);
            for n in lo..hi {
                let (x, y) = if steep { (n, m) } else { (m, n) };
                let d = segment_distance((x as f64 + 0.5, y as f64 + 0.5), a, b);
                let coverage = half + 0.5 - d;
                if coverage > 0.0 {
                    self.blend(x, y, color, coverage);
                }
            }
        }
    }

    /// A filled disc of `radius` px around `c`, anti-aliased like [`Canvas::line`].
    pub fn disc(&mut self, c: (f64, f64), radius: f64, color: Rgb<u8>) {
        self.line(c, c, 2.0 * radius, color);
    }
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}
