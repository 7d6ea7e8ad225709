//! Convolution geometry and the im2col / col2im transforms for one image.
//!
//! Column matrix layout: `[K, P]` row-major with `K = c_in * kh * kw` (row order
//! `(ci, ky, kx)`, the order of a `[c_out, c_in, kh, kw]` weight row) and `P = out_h * out_w`.
//! Each row is a shifted copy of one input plane, so for stride 1 it is filled with
//! contiguous slice copies, and `W [c_out, K] x col [K, P]` lands directly in NCHW.

use std::ops::Range;

/// Shapes of a 2-D convolution (dilation 1, groups 1, square stride and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl ConvGeometry {
    /// Rows of the column matrix (`c_in * kh * kw`).
    pub(crate) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output pixels per image (`out_h * out_w`), the columns of the column matrix.
    pub(crate) fn p(&self) -> usize {
        self.out_h * self.out_w
    }

    pub(crate) fn input_per_image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    pub(crate) fn output_per_image(&self) -> usize {
        self.c_out * self.p()
    }

    /// True when the input image already is the column matrix (1x1, stride 1, no padding).
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// True when every im2col row is the input plane shifted by a flat offset
    /// (stride 1 and output rows as wide as input rows, e.g. 3x3 with padding 1).
    fn is_row_shift(&self) -> bool {
        self.stride == 1 && self.out_w == self.w
    }

    /// Input position read by the first valid output `xs.start` (0 when `xs` is empty).
    fn first_input(&self, xs: &Range<usize>, k: usize) -> usize {
        if xs.is_empty() {
            0
        } else {
            xs.start * self.stride + k - self.padding
        }
    }

    /// Output positions `o` along an axis of length `out_len` whose input position
    /// `o * stride + k - padding` falls inside `0..in_len`.
    fn valid_outputs(&self, k: usize, in_len: usize, out_len: usize) -> Range<usize> {
        let lo = self.padding.saturating_sub(k).div_ceil(self.stride);
        let hi = if in_len + self.padding > k {
            ((in_len - 1 + self.padding - k) / self.stride + 1).min(out_len)
        } else {
            0
        };
        lo.min(hi)..hi
    }
}

/// The input row feeding output row `oy` for kernel row `ky`, if it is not padding.
fn input_row(g: &ConvGeometry, oy: usize, ky: usize) -> Option<usize> {
    (oy * g.stride + ky)
        .checked_sub(g.padding)
        .filter(|&iy| iy < g.h)
}

/// Fills `col` (`[K, rows.len() * out_w]`, every element written) with the columns of
/// output rows `rows` of one image `x` (`[c_in, h, w]`).
pub(crate) fn im2col(g: &ConvGeometry, x: &[f32], col: &mut [f32], rows: Range<usize>) {
    let (plane, tile) = (g.h * g.w, rows.len() * g.out_w);
    if tile == 0 {
        return;
    }
    let mut col_rows = col.chunks_exact_mut(tile);
    for src_plane in x.chunks_exact(plane).take(g.c_in) {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                if g.is_row_shift() {
                    shifted_plane_copy(g, src_plane, col_row, (ky, kx), rows.clone());
                } else {
                    gather_rows(g, src_plane, col_row, (ky, kx), rows.clone());
                }
            }
        }
    }
}

/// Adds the columns `col` of output rows `rows` back onto one image `dx`
/// (`[c_in, h, w]`), the adjoint of [`im2col`]. `col` is scratch: padding entries are
/// zeroed.
pub(crate) fn col2im(g: &ConvGeometry, col: &mut [f32], dx: &mut [f32], rows: Range<usize>) {
    let (plane, tile) = (g.h * g.w, rows.len() * g.out_w);
    if tile == 0 {
        return;
    }
    let mut col_rows = col.chunks_exact_mut(tile);
    for dst_plane in dx.chunks_exact_mut(plane).take(g.c_in) {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                if g.is_row_shift() {
                    shifted_plane_add(g, col_row, dst_plane, (ky, kx), rows.clone());
                } else {
                    scatter_rows(g, col_row, dst_plane, (ky, kx), rows.clone());
                }
            }
        }
    }
}

/// Where one column-matrix row (a tile of output rows) of a row-shift conv overlaps its
/// input plane. Ranges and indices are relative to the tile.
struct PlaneShift {
    /// Tile rows that read real (non-padding) input rows.
    ys: Range<usize>,
    /// Output columns that read real input columns.
    xs: Range<usize>,
    /// Flat index range in the tile covering every valid output.
    dst: Range<usize>,
    /// Flat index in the input plane of `dst.start`.
    src_start: usize,
}

impl PlaneShift {
    fn new(g: &ConvGeometry, (ky, kx): (usize, usize), rows: Range<usize>) -> Option<Self> {
        let valid = g.valid_outputs(ky, g.h, g.out_h);
        let (y0, y1) = (valid.start.max(rows.start), valid.end.min(rows.end));
        let xs = g.valid_outputs(kx, g.w, g.out_w);
        if y0 >= y1 || xs.is_empty() {
            return None;
        }
        let ys = y0 - rows.start..y1 - rows.start;
        let dst = ys.start * g.out_w + xs.start..(ys.end - 1) * g.out_w + xs.end;
        let src_start = (y0 + ky - g.padding) * g.w + xs.start + kx - g.padding;
        Some(PlaneShift {
            ys,
            xs,
            dst,
            src_start,
        })
    }

    /// Zeroes every entry of the tile row `row` that reads padding.
    fn zero_padding(&self, g: &ConvGeometry, row: &mut [f32]) {
        let w = g.out_w;
        row[..self.dst.start].fill(0.0);
        row[self.dst.end..].fill(0.0);
        // Padding columns are few (kernel radius), so walk them down the rows.
        let valid_rows = &mut row[self.ys.start * w..self.ys.end * w];
        for ox in (0..self.xs.start).chain(self.xs.end..w) {
            for v in valid_rows[ox..].iter_mut().step_by(w) {
                *v = 0.0;
            }
        }
    }
}

/// im2col row of a stride-1 conv whose output rows are as wide as its input rows: the
/// row is the input plane shifted by a constant flat offset, so one long copy does it,
/// then the entries that wrapped into a neighbouring row are zeroed.
fn shifted_plane_copy(
    g: &ConvGeometry,
    src: &[f32],
    row: &mut [f32],
    tap: (usize, usize),
    rows: Range<usize>,
) {
    let Some(shift) = PlaneShift::new(g, tap, rows) else {
        row.fill(0.0);
        return;
    };
    let len = shift.dst.len();
    row[shift.dst.clone()].copy_from_slice(&src[shift.src_start..][..len]);
    shift.zero_padding(g, row);
}

/// Adjoint of [`shifted_plane_copy`]: zero the padding entries, then one long add.
fn shifted_plane_add(
    g: &ConvGeometry,
    row: &mut [f32],
    dst: &mut [f32],
    tap: (usize, usize),
    rows: Range<usize>,
) {
    let Some(shift) = PlaneShift::new(g, tap, rows) else {
        return;
    };
    shift.zero_padding(g, row);
    let len = shift.dst.len();
    let dst = &mut dst[shift.src_start..][..len];
    for (d, v) in dst.iter_mut().zip(&row[shift.dst]) {
        *d += v;
    }
}

/// General im2col row: each output row gathers (with the stride) from one input row.
fn gather_rows(
    g: &ConvGeometry,
    src_plane: &[f32],
    row: &mut [f32],
    (ky, kx): (usize, usize),
    rows: Range<usize>,
) {
    let xs = g.valid_outputs(kx, g.w, g.out_w);
    let shift = g.first_input(&xs, kx);
    for (oy, out) in rows.zip(row.chunks_exact_mut(g.out_w)) {
        let Some(iy) = input_row(g, oy, ky) else {
            out.fill(0.0);
            continue;
        };
        let src = &src_plane[iy * g.w..(iy + 1) * g.w];
        out[..xs.start].fill(0.0);
        out[xs.end..].fill(0.0);
        copy_strided(&mut out[xs.clone()], &src[shift..], g.stride);
    }
}

/// Adjoint of [`gather_rows`].
fn scatter_rows(
    g: &ConvGeometry,
    row: &[f32],
    dst_plane: &mut [f32],
    (ky, kx): (usize, usize),
    rows: Range<usize>,
) {
    let xs = g.valid_outputs(kx, g.w, g.out_w);
    let shift = g.first_input(&xs, kx);
    for (oy, grad) in rows.zip(row.chunks_exact(g.out_w)) {
        let Some(iy) = input_row(g, oy, ky) else {
            continue;
        };
        let dst = &mut dst_plane[iy * g.w..(iy + 1) * g.w];
        add_strided(&mut dst[shift..], &grad[xs.clone()], g.stride);
    }
}

/// `out[i] = src[i * stride]`.
#[inline(always)]
fn copy_strided(out: &mut [f32], src: &[f32], stride: usize) {
    if stride == 1 {
        out.copy_from_slice(&src[..out.len()]);
    } else {
        for (o, s) in out.iter_mut().zip(src.chunks(stride)) {
            *o = s[0];
        }
    }
}

/// `dst[i * stride] += grad[i]`.
#[inline(always)]
fn add_strided(dst: &mut [f32], grad: &[f32], stride: usize) {
    if stride == 1 {
        for (d, g) in dst.iter_mut().zip(grad) {
            *d += g;
        }
    } else {
        for (d, g) in dst.chunks_mut(stride).zip(grad) {
            d[0] += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(h: usize, w: usize, k: usize, stride: usize, padding: usize) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            c_in: 2,
            h,
            w,
            c_out: 1,
            kh: k,
            kw: k,
            stride,
            padding,
            out_h: (h + 2 * padding - k) / stride + 1,
            out_w: (w + 2 * padding - k) / stride + 1,
        }
    }

    /// The definition of im2col, one element at a time.
    fn naive_im2col(g: &ConvGeometry, x: &[f32]) -> Vec<f32> {
        let mut col = vec![0.0; g.k() * g.p()];
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (ci * g.kh + ky) * g.kw + kx;
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                            let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                col[row * g.p() + oy * g.out_w + ox] =
                                    x[(ci * g.h + iy as usize) * g.w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_definition_and_col2im_is_its_adjoint() {
        for &(h, w, k, s, p) in &[
            (5, 7, 3, 1, 1),
            (6, 6, 3, 2, 1),
            (7, 5, 3, 2, 1),
            (4, 4, 1, 2, 0),
            (5, 5, 5, 1, 2),
            (3, 3, 3, 1, 0),
            (4, 6, 2, 3, 1),
            (2, 2, 3, 1, 2),
            (6, 6, 3, 1, 1),
            (5, 5, 5, 1, 2),
            (1, 4, 3, 1, 1),
            (4, 1, 3, 1, 1),
            (3, 3, 1, 1, 0),
        ] {
            let g = geometry(h, w, k, s, p);
            let x: Vec<f32> = (0..g.input_per_image()).map(|v| v as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; g.k() * g.p()];
            im2col(&g, &x, &mut col, 0..g.out_h);
            assert_eq!(col, naive_im2col(&g, &x), "im2col for {g:?}");
            // Tiles of output rows give the matching column blocks.
            for tile in [0..1, 1..g.out_h, g.out_h / 2..g.out_h] {
                let n = tile.len() * g.out_w;
                let mut part = vec![f32::NAN; g.k() * n];
                im2col(&g, &x, &mut part, tile.clone());
                for (r, part_row) in part.chunks_exact(n.max(1)).enumerate() {
                    let full_row = &col[r * g.p() + tile.start * g.out_w..][..n];
                    assert_eq!(&part_row[..n], full_row, "tile {tile:?} of {g:?}");
                }
            }
            // <im2col(x), c> == <x, col2im(c)> for any c, also when done tile by tile.
            let c: Vec<f32> = (0..col.len()).map(|v| ((v * 7) % 11) as f32).collect();
            let mut back = vec![0.0; x.len()];
            col2im(&g, &mut c.clone(), &mut back, 0..g.out_h);
            let mut tiled_back = vec![0.0; x.len()];
            for tile in [0..g.out_h / 2, g.out_h / 2..g.out_h] {
                let n = tile.len() * g.out_w;
                let mut part: Vec<f32> = c
                    .chunks_exact(g.p())
                    .flat_map(|row| row[tile.start * g.out_w..][..n].to_vec())
                    .collect();
                col2im(&g, &mut part, &mut tiled_back, tile);
            }
            assert_eq!(back, tiled_back, "tiled col2im for {g:?}");
            let lhs: f32 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "adjoint for {g:?}");
        }
    }
}
