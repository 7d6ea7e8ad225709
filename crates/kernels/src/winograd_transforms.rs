//! The tile transforms of Winograd F(2x2, 3x3) and their adjoints, for one block of
//! tile rows of one channel plane at a time (Lavin & Gray 2016, "Fast Algorithms for
//! Convolutional Neural Networks"). With `d` a 4x4 input tile, `g` a 3x3 kernel and `y` the 2x2 output tile:
//!
//! ```text
//! y = A^T [(G g G^T) . (B^T d B)] A
//! B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//! A^T = [1 1 1 0; 0 1 -1 -1]
//! ```
//!
//! Every constant is 0, +-1, +-2 or +-1/2, so the transforms only add, subtract and
//! scale by powers of two (exact): the result differs from the direct sum only by how the
//! additions are grouped.
//!
//! The *upsampled* variant reads the input of a nearest-2x upsampling without building
//! it: an upsampled 4x4 tile repeats its middle row and column (low-res rows `i-1, i, i,
//! i+1`), so row and column 2 of `B^T d B` are zero and only 9 of the 16 products exist.
//!
//! Transformed values are stored position-major, `[position][channel][tile]`, the tiles
//! of a block numbered row by row. The loops run over all tiles of a block at once (long
//! runs vectorise; a tile row alone is only 4 to 16 tiles), reading the plane's columns
//! split into even and odd ones, and then patch the tiles at the ends of tile rows, whose
//! neighbours in that numbering are not their neighbours in the plane.

/// Transform indices kept per axis: all 4, or the 3 an upsampled input makes non-zero.
pub(crate) const FULL_AXIS: &[usize] = &[0, 1, 2, 3];
pub(crate) const UPSAMPLED_AXIS: &[usize] = &[0, 1, 3];

/// `G`, mapping the 3 kernel taps of one axis to the 4 transform positions.
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `U = G g G^T` of every `[c_out, c_in, 3, 3]` kernel, stored `[position][c_out][c_in]`
/// for the positions `axis x axis`.
pub(crate) fn weight_transform(w: &[f32], pairs: usize, axis: &[usize]) -> Vec<f32> {
    let mut u = vec![0.0f32; axis.len() * axis.len() * pairs];
    for (pair, g) in w.chunks_exact(9).enumerate().take(pairs) {
        for (ai, &a) in axis.iter().enumerate() {
            for (bi, &b) in axis.iter().enumerate() {
                let mut sum = 0.0f32;
                for ky in 0..3 {
                    let row: f32 = (0..3).map(|kx| g[ky * 3 + kx] * G[b][kx]).sum();
                    sum += G[a][ky] * row;
                }
                u[(ai * axis.len() + bi) * pairs + pair] = sum;
            }
        }
    }
    u
}

/// The kernel gradient `G^T dU G` from `dU` stored like [`weight_transform`]'s output;
/// returns `[c_out, c_in, 3, 3]`.
pub(crate) fn weight_grad_transform(du: &[f32], pairs: usize, axis: &[usize]) -> Vec<f32> {
    let mut dw = vec![0.0f32; pairs * 9];
    for (pair, dg) in dw.chunks_exact_mut(9).enumerate() {
        for (ai, &a) in axis.iter().enumerate() {
            for (bi, &b) in axis.iter().enumerate() {
                let d = du[(ai * axis.len() + bi) * pairs + pair];
                for ky in 0..3 {
                    for kx in 0..3 {
                        dg[ky * 3 + kx] += G[a][ky] * d * G[b][kx];
                    }
                }
            }
        }
    }
    dw
}

/// A block of whole tile rows: `rows` rows from tile row `first`, `tiles_w` tiles each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    pub first: usize,
    pub rows: usize,
    pub tiles_w: usize,
}

impl Block {
    pub(crate) fn tiles(&self) -> usize {
        self.rows * self.tiles_w
    }

    /// Index of the first tile of each tile row but the first.
    fn inner_row_starts(&self) -> impl Iterator<Item = usize> {
        let tw = self.tiles_w;
        (1..self.rows).map(move |k| k * tw)
    }

    /// Index of the last tile of each tile row but the last.
    fn inner_row_ends(&self) -> impl Iterator<Item = usize> {
        let tw = self.tiles_w;
        (1..self.rows).map(move |k| k * tw - 1)
    }
}

/// Scratch floats the block transforms need for blocks of up to `tiles` tiles of planes
/// up to `width` wide.
pub(crate) fn scratch_len(tiles: usize, width: usize) -> usize {
    13 * tiles + 2 * width + 8
}

/// Rows `first..` of a `height x width` plane that a block reads, copied together so the
/// plane is read from memory in one sequential pass. `split` rows are stored as their
/// even columns then their odd ones (for the full transform, whose tiles start at odd
/// columns).
#[derive(Clone, Copy)]
pub(crate) struct PlaneRows<'a> {
    pub data: &'a [f32],
    pub first: usize,
    pub height: usize,
    pub width: usize,
}

impl<'a> PlaneRows<'a> {
    /// Copies rows `first..end` of `plane` into `buffer`, split into even and odd
    /// columns when `split`.
    #[inline(always)]
    pub(crate) fn copy(
        plane: &[f32],
        (height, width): (usize, usize),
        (first, end): (usize, usize),
        split: bool,
        buffer: &'a mut [f32],
    ) -> Self {
        let rows = &plane[first * width..end * width];
        let buffer = &mut buffer[..rows.len()];
        if split {
            let half = width / 2;
            for (src, dst) in rows.chunks_exact(width).zip(buffer.chunks_exact_mut(width)) {
                let (even, odd) = dst.split_at_mut(half);
                for ((pair, e), o) in src.chunks_exact(2).zip(even).zip(odd) {
                    *e = pair[0];
                    *o = pair[1];
                }
            }
        } else {
            buffer.copy_from_slice(rows);
        }
        PlaneRows {
            data: buffer,
            first,
            height,
            width,
        }
    }

    /// Plane row `r` as stored, or `zeros` outside the plane.
    #[inline(always)]
    fn row(&self, r: isize, zeros: &'a [f32]) -> &'a [f32] {
        if r >= 0 && (r as usize) < self.height {
            let at = (r as usize - self.first) * self.width;
            &self.data[at..at + self.width]
        } else {
            &zeros[..self.width]
        }
    }
}

/// Rows combined by the vertical half of `B^T d B`, as `(k_x, sign, k_y)` for
/// `t = d[k_x] + sign * d[k_y]`: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3.
const INPUT_ROWS: [(isize, f32, isize); 4] =
    [(0, -1.0, 2), (1, 1.0, 2), (2, -1.0, 1), (1, -1.0, 3)];

/// `B^T d B` of the tiles of `block` of one plane (`height x width`, width even):
/// `out[a * 4 + b]` receives the values of position `(a, b)`, one per tile.
#[inline(always)]
pub(crate) fn input_block(
    plane: PlaneRows<'_>,
    block: &Block,
    scratch: &mut [f32],
    out: &mut [&mut [f32]],
) {
    let (tw, n) = (block.tiles_w, block.tiles());
    let (zeros, rest) = scratch.split_at_mut(plane.width);
    zeros.fill(0.0);
    let zeros: &[f32] = zeros;
    // even[1 + f] / odd[1 + f]: columns 2j / 2j + 1 of tile f's transformed row, with a
    // zero before the first tile and after the last.
    let (even, rest) = rest.split_at_mut(n + 2);
    let odd = &mut rest[..n + 2];
    for (a, &(kx, sign, ky)) in INPUT_ROWS.iter().enumerate() {
        even[0] = 0.0;
        odd[0] = 0.0;
        even[n + 1] = 0.0;
        odd[n + 1] = 0.0;
        for k in 0..block.rows {
            let r = 2 * (block.first + k) as isize - 1;
            let (x, y) = (plane.row(r + kx, zeros), plane.row(r + ky, zeros));
            let (x_even, x_odd) = x.split_at(tw);
            let (y_even, y_odd) = y.split_at(tw);
            let e = &mut even[1 + k * tw..1 + (k + 1) * tw];
            for ((e, &x), &y) in e.iter_mut().zip(x_even).zip(y_even) {
                *e = x + sign * y;
            }
            let o = &mut odd[1 + k * tw..1 + (k + 1) * tw];
            for ((o, &x), &y) in o.iter_mut().zip(x_odd).zip(y_odd) {
                *o = x + sign * y;
            }
        }
        let [o0, o1, o2, o3] = &mut out[4 * a..4 * a + 4] else {
            return;
        };
        input_columns(
            even,
            odd,
            [&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]],
        );
        // The columns just outside the plane are zero, not the neighbouring tile row's.
        for f in block.inner_row_starts() {
            o0[f] = 0.0 - odd[f + 1];
        }
        for f in block.inner_row_ends() {
            o3[f] = even[f + 1] - 0.0;
        }
    }
}

/// The column half of `B^T d B`: tile `f` reads `(c0, c1, c2, c3) = (odd[f], even[f + 1],
/// odd[f + 1], even[f + 2])` and writes `c0 - c2, c1 + c2, c2 - c1, c1 - c3`.
#[inline(always)]
fn input_columns(even: &[f32], odd: &[f32], out: [&mut [f32]; 4]) {
    let [o0, o1, o2, o3] = out;
    let n = o0.len();
    let (c0, c2) = (&odd[..n], &odd[1..=n]);
    let (c1, c3) = (&even[1..=n], &even[2..n + 2]);
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for f in 0..n {
        o0[f] = c0[f] - c2[f];
        o1[f] = c1[f] + c2[f];
        o2[f] = c2[f] - c1[f];
        o3[f] = c1[f] - c3[f];
    }
}

/// Low-res rows combined by the upsampled transform, relative to tile row `i`:
/// t0 = x[i-1] - x[i], t1 = x[i] + x[i] (= 2 x[i]), t3 = x[i] - x[i+1] (t2 is zero).
const UPSAMPLED_ROWS: [(isize, f32, isize); 3] = [(-1, -1.0, 0), (0, 1.0, 0), (0, -1.0, 1)];

/// The 9 non-zero values of `B^T d B` for the tiles of `block` of the nearest-2x
/// upsampling of a `height x width` plane (`width` tiles per row): `out[ai * 3 + bi]` for
/// positions `(UPSAMPLED_AXIS[ai], UPSAMPLED_AXIS[bi])`.
#[inline(always)]
pub(crate) fn upsampled_input_block(
    plane: PlaneRows<'_>,
    block: &Block,
    scratch: &mut [f32],
    out: &mut [&mut [f32]],
) {
    let (tw, n) = (block.tiles_w, block.tiles());
    let (zeros, rest) = scratch.split_at_mut(plane.width);
    zeros.fill(0.0);
    let zeros: &[f32] = zeros;
    // t[1 + f]: tile f's column of the transformed row, zero before the first and after
    // the last tile. An upsampled tile's columns are low-res columns j-1, j, j, j+1.
    let t = &mut rest[..n + 2];
    for (ai, &(kx, sign, ky)) in UPSAMPLED_ROWS.iter().enumerate() {
        t[0] = 0.0;
        t[n + 1] = 0.0;
        for k in 0..block.rows {
            let i = (block.first + k) as isize;
            let (x, y) = (plane.row(i + kx, zeros), plane.row(i + ky, zeros));
            let row = &mut t[1 + k * tw..1 + (k + 1) * tw];
            for ((o, &x), &y) in row.iter_mut().zip(x).zip(y) {
                *o = x + sign * y;
            }
        }
        let [o0, o1, o3] = &mut out[3 * ai..3 * ai + 3] else {
            return;
        };
        let (p0, p1, p2) = (&t[..n], &t[1..=n], &t[2..n + 2]);
        let (o0, o1, o3) = (&mut o0[..n], &mut o1[..n], &mut o3[..n]);
        for f in 0..n {
            o0[f] = p0[f] - p1[f];
            o1[f] = p1[f] + p1[f];
            o3[f] = p1[f] - p2[f];
        }
        for f in block.inner_row_starts() {
            o0[f] = 0.0 - t[f + 1];
        }
        for f in block.inner_row_ends() {
            o3[f] = t[f + 1] - 0.0;
        }
    }
}

/// `A^T m A + bias` of the tiles of `block`: `m[a * 4 + b]` holds position `(a, b)`, one
/// value per tile (a zero run where the variant has none); writes output rows
/// `2 * first ..` of the plane `y` (`2 * tiles_w` wide).
#[inline(always)]
pub(crate) fn output_block(
    m: &[&[f32]; 16],
    bias: f32,
    block: &Block,
    scratch: &mut [f32],
    y: &mut [f32],
) {
    let n = block.tiles();
    let m: [&[f32]; 16] = m.map(|m| &m[..n]);
    // Rows first: s0_b = m0b + m1b + m2b, s1_b = m1b - m2b - m3b.
    let (s0, rest) = scratch.split_at_mut(4 * n);
    let (s1, rest) = rest.split_at_mut(4 * n);
    let (top, rest) = rest.split_at_mut(2 * n);
    let bottom = &mut rest[..2 * n];
    for b in 0..4 {
        let (m0, m1, m2, m3) = (m[b], m[4 + b], m[8 + b], m[12 + b]);
        let s0 = &mut s0[b * n..(b + 1) * n];
        let s1 = &mut s1[b * n..(b + 1) * n];
        for f in 0..n {
            s0[f] = m0[f] + m1[f] + m2[f];
            s1[f] = m1[f] - m2[f] - m3[f];
        }
    }
    output_columns(s0, bias, top);
    output_columns(s1, bias, bottom);
    let out_w = 2 * block.tiles_w;
    for (k, (top, bottom)) in top
        .chunks_exact(out_w)
        .zip(bottom.chunks_exact(out_w))
        .enumerate()
    {
        let i = block.first + k;
        y[2 * i * out_w..(2 * i + 1) * out_w].copy_from_slice(top);
        y[(2 * i + 1) * out_w..(2 * i + 2) * out_w].copy_from_slice(bottom);
    }
}

/// Columns of `A^T m A`: tile `f` gives `out[2f] = s0 + s1 + s2 + bias` and
/// `out[2f + 1] = s1 - s2 - s3 + bias`.
#[inline(always)]
fn output_columns(s: &[f32], bias: f32, out: &mut [f32]) {
    let n = s.len() / 4;
    let (s0, rest) = s.split_at(n);
    let (s1, rest) = rest.split_at(n);
    let (s2, s3) = rest.split_at(n);
    let values = s0.iter().zip(s1).zip(s2.iter().zip(&s3[..n]));
    for (pair, ((&s0, &s1), (&s2, &s3))) in out[..2 * n].chunks_exact_mut(2).zip(values) {
        pair[0] = s0 + s1 + s2 + bias;
        pair[1] = s1 - s2 - s3 + bias;
    }
}

/// Row coefficients of `A dy A^T` per transform index: `r = c0 * y0 + c1 * y1` with
/// r0 = y0, r1 = y0 + y1, r2 = y0 - y1, r3 = -y1 (and the same along columns).
const GRAD_ROWS: [(f32, f32); 4] = [(1.0, 0.0), (1.0, 1.0), (1.0, -1.0), (0.0, -1.0)];

/// `A dy A^T` of the tiles of `block` of an output-gradient plane (`2 * tiles_w` wide):
/// `out[ai * n + bi]` receives position `(axis[ai], axis[bi])`.
#[inline(always)]
pub(crate) fn grad_block(
    dy: &[f32],
    block: &Block,
    axis: &[usize],
    scratch: &mut [f32],
    out: &mut [&mut [f32]],
) {
    let (tw, n) = (block.tiles_w, block.tiles());
    let out_w = 2 * tw;
    // Even and odd columns of the two output rows of every tile.
    let (split, rest) = scratch.split_at_mut(4 * n);
    let (row_even, rest) = rest.split_at_mut(n);
    let row_odd = &mut rest[..n];
    for k in 0..block.rows {
        let i = block.first + k;
        for (half, parts) in split.chunks_exact_mut(2 * n).enumerate() {
            let row = &dy[(2 * i + half) * out_w..(2 * i + half + 1) * out_w];
            let (even, odd) = parts.split_at_mut(n);
            let pairs = even[k * tw..(k + 1) * tw]
                .iter_mut()
                .zip(&mut odd[k * tw..(k + 1) * tw]);
            for (c, (e, o)) in row.chunks_exact(2).zip(pairs) {
                *e = c[0];
                *o = c[1];
            }
        }
    }
    let (top, bottom) = split.split_at(2 * n);
    let (e0, o0) = top.split_at(n);
    let (e1, o1) = bottom.split_at(n);
    let na = axis.len();
    for (ai, &a) in axis.iter().enumerate() {
        let (c0, c1) = GRAD_ROWS[a];
        for f in 0..n {
            row_even[f] = c0 * e0[f] + c1 * e1[f];
            row_odd[f] = c0 * o0[f] + c1 * o1[f];
        }
        for (bi, &b) in axis.iter().enumerate() {
            let o = &mut out[ai * na + bi][..n];
            let values = o.iter_mut().zip(row_even.iter().zip(row_odd.iter()));
            match b {
                0 => values.for_each(|(o, (&e, _))| *o = e),
                1 => values.for_each(|(o, (&e, &d))| *o = e + d),
                2 => values.for_each(|(o, (&e, &d))| *o = e - d),
                _ => values.for_each(|(o, (_, &d))| *o = -d),
            }
        }
    }
}

/// Adjoint of [`input_block`]: adds `B dV B^T` of the tiles of `block` into the plane
/// `dx` (`height x width`), overlapping tiles summing. `dv[a * 4 + b]` as `input_block`
/// wrote.
#[inline(always)]
pub(crate) fn input_adjoint_block(
    dv: &[&[f32]; 16],
    (height, width): (usize, usize),
    block: &Block,
    scratch: &mut [f32],
    dx: &mut [f32],
) {
    let (tw, n) = (block.tiles_w, block.tiles());
    // Per transform row a: the gradient of columns 2j (even) and 2j + 1 (odd) of each
    // tile row, the tiles' column adjoints summed where tiles overlap.
    let (even, rest) = scratch.split_at_mut(4 * n);
    let odd = &mut rest[..4 * n];
    for a in 0..4 {
        let v = [dv[4 * a], dv[4 * a + 1], dv[4 * a + 2], dv[4 * a + 3]].map(|v| &v[..n]);
        let even = &mut even[a * n..(a + 1) * n];
        let odd = &mut odd[a * n..(a + 1) * n];
        input_columns_adjoint(v, block, even, odd);
    }
    // Rows 2i-1 .. 2i+2 receive q0, q1 - q2 + q3, -q0 + q1 + q2, -q3.
    let coefficients = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, -1.0, 1.0],
        [-1.0, 1.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, -1.0],
    ];
    for k in 0..block.rows {
        let tiles = k * tw..(k + 1) * tw;
        let (even, odd): (&[f32], &[f32]) = (even, odd);
        let even_rows: [&[f32]; 4] = std::array::from_fn(|a| &even[a * n..][tiles.clone()]);
        let odd_rows: [&[f32]; 4] = std::array::from_fn(|a| &odd[a * n..][tiles.clone()]);
        for (kk, c) in coefficients.iter().enumerate() {
            let r = 2 * (block.first + k) as isize - 1 + kk as isize;
            if r >= 0 && (r as usize) < height {
                let row = &mut dx[r as usize * width..(r as usize + 1) * width];
                add_split_combination(row, &even_rows, &odd_rows, c);
            }
        }
    }
}

/// Adjoint of [`input_columns`] for one transform row: tile `f` contributes
/// `(e0, e1, e2, e3) = (v0, v1 - v2 + v3, -v0 + v1 + v2, -v3)` to columns
/// `2j - 1 .. 2j + 2`, so column `2j` gets `e1(f) + e3(f - 1)` and column `2j + 1` gets
/// `e2(f) + e0(f + 1)`, without the neighbours across a tile row's ends (which fall on
/// the zero padding).
#[inline(always)]
fn input_columns_adjoint(v: [&[f32]; 4], block: &Block, even: &mut [f32], odd: &mut [f32]) {
    let [v0, v1, v2, v3] = v;
    let n = v0.len();
    let e1 = |f: usize| v1[f] - v2[f] + v3[f];
    let e2 = |f: usize| -v0[f] + v1[f] + v2[f];
    let (even, odd) = (&mut even[..n], &mut odd[..n]);
    even[0] = e1(0);
    for f in 1..n {
        even[f] = e1(f) - v3[f - 1];
    }
    for f in 0..n - 1 {
        odd[f] = e2(f) + v0[f + 1];
    }
    odd[n - 1] = e2(n - 1);
    for f in block.inner_row_starts() {
        even[f] = e1(f);
    }
    for f in block.inner_row_ends() {
        odd[f] = e2(f);
    }
}

/// `row[2j] += sum_k c[k] even[k][j]`, `row[2j + 1] += sum_k c[k] odd[k][j]`, in the
/// order of `k`. The coefficients are 0 or +-1, so this is the same arithmetic as the
/// adds and subtracts written out.
#[inline(always)]
fn add_split_combination(row: &mut [f32], even: &[&[f32]; 4], odd: &[&[f32]; 4], c: &[f32; 4]) {
    let n = row.len() / 2;
    let [e0, e1, e2, e3] = even.map(|e| &e[..n]);
    let [o0, o1, o2, o3] = odd.map(|o| &o[..n]);
    for (j, pair) in row[..2 * n].chunks_exact_mut(2).enumerate() {
        pair[0] += c[0] * e0[j] + c[1] * e1[j] + c[2] * e2[j] + c[3] * e3[j];
        pair[1] += c[0] * o0[j] + c[1] * o1[j] + c[2] * o2[j] + c[3] * o3[j];
    }
}

/// Adjoint of [`upsampled_input_block`]: adds the gradient of the tiles of `block` into
/// the low-res plane `dx` (`height x width`). `dv[ai * 3 + bi]` as that function wrote.
#[inline(always)]
pub(crate) fn upsampled_input_adjoint_block(
    dv: &[&[f32]; 9],
    (height, width): (usize, usize),
    block: &Block,
    scratch: &mut [f32],
    dx: &mut [f32],
) {
    let (tw, n) = (block.tiles_w, block.tiles());
    let q = &mut scratch[..3 * n];
    for (ai, q) in q.chunks_exact_mut(n).enumerate() {
        let [v0, v1, v3] = [dv[3 * ai], dv[3 * ai + 1], dv[3 * ai + 2]].map(|v| &v[..n]);
        // Tile j adds v0 at column j-1, -v0 + 2 v1 + v3 at j and -v3 at j+1.
        for (f, q) in q.iter_mut().enumerate() {
            *q = -v0[f] + 2.0 * v1[f] + v3[f];
        }
        for k in 0..block.rows {
            let tiles = k * tw..(k + 1) * tw;
            let (q, v0, v3) = (&mut q[tiles.clone()], &v0[tiles.clone()], &v3[tiles]);
            for (q, &v) in q.iter_mut().zip(&v0[1..]) {
                *q += v;
            }
            for (q, &v) in q[1..].iter_mut().zip(v3) {
                *q -= v;
            }
        }
    }
    let (q0, rest) = q.split_at(n);
    let (q1, q3) = rest.split_at(n);
    // Rows i-1, i, i+1 receive q0, -q0 + 2 q1 + q3, -q3.
    let coefficients = [[1.0, 0.0, 0.0], [-1.0, 2.0, 1.0], [0.0, 0.0, -1.0]];
    for k in 0..block.rows {
        let tiles = k * tw..(k + 1) * tw;
        let rows = [&q0[tiles.clone()], &q1[tiles.clone()], &q3[tiles]];
        for (kk, c) in coefficients.iter().enumerate() {
            let r = (block.first + k) as isize - 1 + kk as isize;
            if r >= 0 && (r as usize) < height {
                let row = &mut dx[r as usize * width..(r as usize + 1) * width];
                let [a, b, d] = rows.map(|q| &q[..row.len()]);
                for (x, v) in row.iter_mut().enumerate() {
                    *v += c[0] * a[x] + c[1] * b[x] + c[2] * d[x];
                }
            }
        }
    }
}
