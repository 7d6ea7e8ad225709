//! Winograd F(2x2, 3x3) convolution for 3x3, stride-1, padding-1 convs, optionally of a
//! nearest-2x-upsampled input: forward, and a backward that yields dx, dw and db.
//!
//! Per image and block of tile rows: transform the input tiles (`V = B^T d B`), multiply
//! per transform position (`M_p = U_p V_p`, one gemm of `[c_out, c_in] x [c_in, tiles]`
//! each), transform back (`y = A^T M A`). That is 16 multiply-adds per 2x2 output tile
//! and channel pair instead of 36, and 9 instead of 36 (of the upsampled conv's 144) when
//! the input is upsampled. The backward runs the same products transposed:
//! `dU_p += dM_p V_p^T` with `dM = A dy A^T`, and `dV_p = U_p^T dM_p` scattered back by
//! the adjoint input transform.
//!
//! Each image is computed on its own with the same blocks whatever the batch, so a
//! sample's output does not depend on the batch it is in.

use std::ops::Range;

use gemm::Parallelism;

use crate::conv_engine::Wanted;
use crate::im2col::ConvGeometry;
use crate::matmul::{matmul, DstLayout, Mat};
use crate::parallel::{over_batch, with_scratch};
use crate::simd::{avx2_dispatch, sum};
use crate::winograd_transforms::{
    grad_block, input_adjoint_block, input_block, output_block, scratch_len,
    upsampled_input_adjoint_block, upsampled_input_block, weight_grad_transform, weight_transform,
    Block, PlaneRows, FULL_AXIS, UPSAMPLED_AXIS,
};

/// Floats of transformed data per block; two such arrays (plus gemm's packing) should
/// stay in a core's L2 cache.
const BLOCK_FLOATS: usize = 96 * 1024;

/// Shapes of one Winograd conv: input `[batch, c_in, h, w]` (before upsampling),
/// output `[batch, c_out, 2 * tiles_h, 2 * tiles_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Winograd {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub h: usize,
    pub w: usize,
    /// The conv reads the nearest-2x upsampling of the input.
    pub upsampled: bool,
}

impl Winograd {
    /// The Winograd form of a direct conv, when it has one worth using: 3x3, stride 1,
    /// padding 1, even height and width, and enough input channels. (Few output channels
    /// are fine: a UNet's last conv, 64 -> 3, is 1.5x faster this way, mostly because its
    /// input gradient avoids im2col's 9x-sized column buffer.)
    pub(crate) fn for_conv(g: &ConvGeometry) -> Option<Self> {
        let fits = g.kh == 3
            && g.kw == 3
            && g.stride == 1
            && g.padding == 1
            && g.h.is_multiple_of(2)
            && g.w.is_multiple_of(2)
            && g.h > 0
            && g.w > 0
            && g.c_in >= Self::MIN_CHANNELS;
        fits.then_some(Winograd {
            batch: g.batch,
            c_in: g.c_in,
            c_out: g.c_out,
            h: g.h,
            w: g.w,
            upsampled: false,
        })
    }

    /// Fewest input channels for which the per-position products (inner size `c_in`)
    /// beat one im2col product with 9x the inner size.
    pub(crate) const MIN_CHANNELS: usize = 16;

    fn axis(&self) -> &'static [usize] {
        if self.upsampled {
            UPSAMPLED_AXIS
        } else {
            FULL_AXIS
        }
    }

    fn positions(&self) -> usize {
        self.axis().len() * self.axis().len()
    }

    pub(crate) fn tiles_h(&self) -> usize {
        if self.upsampled {
            self.h
        } else {
            self.h / 2
        }
    }

    pub(crate) fn tiles_w(&self) -> usize {
        if self.upsampled {
            self.w
        } else {
            self.w / 2
        }
    }

    pub(crate) fn out_h(&self) -> usize {
        2 * self.tiles_h()
    }

    pub(crate) fn out_w(&self) -> usize {
        2 * self.tiles_w()
    }

    fn input_per_image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn output_per_image(&self) -> usize {
        self.c_out * self.out_h() * self.out_w()
    }

    /// Tile rows per block: as many as fit `BLOCK_FLOATS` for the larger side.
    fn rows_per_block(&self) -> usize {
        let per_row = self.positions() * self.c_in.max(self.c_out) * self.tiles_w();
        (BLOCK_FLOATS / per_row.max(1)).clamp(1, self.tiles_h().max(1))
    }

    fn blocks(&self) -> impl Iterator<Item = Range<usize>> {
        let (step, rows) = (self.rows_per_block(), self.tiles_h());
        (0..rows)
            .step_by(step)
            .map(move |r| r..(r + step).min(rows))
    }

    /// Floats of one block's transformed data with `channels` channels.
    fn block_len(&self, channels: usize) -> usize {
        self.positions() * channels * self.rows_per_block() * self.tiles_w()
    }
}

/// `y = conv3x3(x or up2x(x), w) + bias`, `[batch, c_out, out_h, out_w]`.
pub(crate) fn forward(g: &Winograd, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let u = weight_transform(w, g.c_out * g.c_in, g.axis());
    let mut y = vec![0.0f32; g.batch * g.output_per_image()];
    let scratch = g.block_len(g.c_in) + g.block_len(g.c_out) + transform_scratch(g);
    let work = |images: Range<usize>, y_chunk: &mut [f32], par| {
        with_scratch(scratch, |scratch| {
            let (v, rest) = scratch.split_at_mut(g.block_len(g.c_in));
            let (m, rows) = rest.split_at_mut(g.block_len(g.c_out));
            let y_images = y_chunk.chunks_exact_mut(g.output_per_image());
            for (image, y_img) in images.zip(y_images) {
                let x_img = &x[image * g.input_per_image()..][..g.input_per_image()];
                for block in g.blocks() {
                    let tiles = block.len() * g.tiles_w();
                    transform_input(g, x_img, block.clone(), rows, v);
                    for p in 0..g.positions() {
                        let v_p = Mat::row_major(&v[p * g.c_in * tiles..], g.c_in, tiles);
                        let m_p = &mut m[p * g.c_out * tiles..][..g.c_out * tiles];
                        matmul(
                            m_p,
                            DstLayout::RowMajor(tiles),
                            u_mat(g, &u, p),
                            v_p,
                            false,
                            par,
                        );
                    }
                    transform_output(g, m, block, bias, rows, y_img);
                }
            }
        })
    };
    over_batch(g.batch, &mut y, g.output_per_image(), work);
    y
}

/// Scratch floats of the block transforms.
fn transform_scratch(g: &Winograd) -> usize {
    let rows_read = (2 * g.rows_per_block() + 2) * g.w;
    rows_read + scratch_len(g.rows_per_block() * g.tiles_w(), g.w.max(g.out_w()))
}

/// `U_p`, `[c_out, c_in]`.
fn u_mat<'a>(g: &Winograd, u: &'a [f32], p: usize) -> Mat<'a> {
    let pairs = g.c_out * g.c_in;
    Mat::row_major(&u[p * pairs..(p + 1) * pairs], g.c_out, g.c_in)
}

/// Gradients of [`forward`], packed `[dx (if wanted) | dw | db (if wanted)]`.
pub(crate) fn backward(g: &Winograd, x: &[f32], w: &[f32], dy: &[f32], want: Wanted) -> Vec<f32> {
    let u = weight_transform(w, g.c_out * g.c_in, g.axis());
    let dx_per_image = if want.dx { g.input_per_image() } else { 0 };
    let du_len = g.positions() * g.c_out * g.c_in;
    let scratch = 2 * g.block_len(g.c_in) + g.block_len(g.c_out) + transform_scratch(g);
    let mut dx = vec![0.0f32; g.batch * dx_per_image];
    let work = |images: Range<usize>, dx_chunk: &mut [f32], par| {
        let mut du = vec![0.0f32; du_len];
        let mut db = vec![0.0f32; if want.db { g.c_out } else { 0 }];
        with_scratch(scratch, |scratch| {
            let (v, rest) = scratch.split_at_mut(g.block_len(g.c_in));
            let (dv, rest) = rest.split_at_mut(g.block_len(g.c_in));
            let (dm, rows) = rest.split_at_mut(g.block_len(g.c_out));
            for (i, image) in images.enumerate() {
                let x_img = &x[image * g.input_per_image()..][..g.input_per_image()];
                let dy_img = &dy[image * g.output_per_image()..][..g.output_per_image()];
                let dx_img = &mut dx_chunk[i * dx_per_image..(i + 1) * dx_per_image];
                let bufs = Buffers {
                    v: &mut *v,
                    dv: &mut *dv,
                    dm: &mut *dm,
                    rows: &mut *rows,
                };
                backward_image(g, &u, (x_img, dy_img), bufs, (&mut du, dx_img), par);
                let plane = g.out_h() * g.out_w();
                for (s, row) in db.iter_mut().zip(dy_img.chunks_exact(plane.max(1))) {
                    *s += sum(row) as f32;
                }
            }
        });
        (du, db)
    };
    let partials = over_batch(g.batch, &mut dx, dx_per_image, work);
    let mut du = vec![0.0f32; du_len];
    let mut db = vec![0.0f32; if want.db { g.c_out } else { 0 }];
    for (part_du, part_db) in &partials {
        add_into(&mut du, part_du);
        add_into(&mut db, part_db);
    }
    let dw = weight_grad_transform(&du, g.c_out * g.c_in, g.axis());
    let mut packed = dx;
    packed.extend_from_slice(&dw);
    packed.extend_from_slice(&db);
    packed
}

/// Per-thread scratch of the backward pass.
struct Buffers<'a> {
    v: &'a mut [f32],
    dv: &'a mut [f32],
    dm: &'a mut [f32],
    rows: &'a mut [f32],
}

/// One image's share of the backward: adds into `du` and writes `dx_img` (empty when
/// dx is not wanted).
fn backward_image(
    g: &Winograd,
    u: &[f32],
    (x_img, dy_img): (&[f32], &[f32]),
    bufs: Buffers<'_>,
    (du, dx_img): (&mut [f32], &mut [f32]),
    par: Parallelism,
) {
    let Buffers { v, dv, dm, rows } = bufs;
    let pairs = g.c_out * g.c_in;
    for block in g.blocks() {
        let tiles = block.len() * g.tiles_w();
        transform_input(g, x_img, block.clone(), rows, v);
        transform_grad(g, dy_img, block.clone(), rows, dm);
        for p in 0..g.positions() {
            let dm_p = Mat::row_major(&dm[p * g.c_out * tiles..], g.c_out, tiles);
            let v_p = Mat::row_major(&v[p * g.c_in * tiles..], g.c_in, tiles);
            let du_p = &mut du[p * pairs..(p + 1) * pairs];
            matmul(du_p, DstLayout::RowMajor(g.c_in), dm_p, v_p.t(), true, par);
            if !dx_img.is_empty() {
                let dv_p = &mut dv[p * g.c_in * tiles..][..g.c_in * tiles];
                let u_t = u_mat(g, u, p).t();
                matmul(dv_p, DstLayout::RowMajor(tiles), u_t, dm_p, false, par);
            }
        }
        if !dx_img.is_empty() {
            transform_input_adjoint(g, dv, block, rows, dx_img);
        }
    }
}

/// The transform block of tile rows `rows`.
fn block_of(g: &Winograd, rows: &Range<usize>) -> Block {
    Block {
        first: rows.start,
        rows: rows.len(),
        tiles_w: g.tiles_w(),
    }
}

/// `V` of the tiles in tile rows `block`, `[position][c_in][tile]`.
fn transform_input(
    g: &Winograd,
    x_img: &[f32],
    block: Range<usize>,
    scratch: &mut [f32],
    v: &mut [f32],
) {
    let block = block_of(g, &block);
    if g.upsampled {
        input_kernel::<true>(g, x_img, &block, scratch, v);
    } else {
        input_kernel::<false>(g, x_img, &block, scratch, v);
    }
}

avx2_dispatch!(input_kernel => input_channels<const UP>(
    g: &Winograd, x_img: &[f32], block: &Block, scratch: &mut [f32], v: &mut [f32]
));

#[inline(always)]
fn input_channels<const UP: bool>(
    g: &Winograd,
    x_img: &[f32],
    block: &Block,
    scratch: &mut [f32],
    v: &mut [f32],
) {
    let n = block.tiles();
    let v = &mut v[..g.positions() * g.c_in * n];
    // The plane rows the block reads (one above and below its own).
    let (first, end) = if UP {
        (block.first, block.first + block.rows)
    } else {
        (2 * block.first, 2 * (block.first + block.rows))
    };
    let (first, end) = (first.saturating_sub(1), (end + 1).min(g.h));
    let (local, scratch) = scratch.split_at_mut((end - first) * g.w);
    let local = &mut *local;
    for (c, plane) in x_img.chunks_exact((g.h * g.w).max(1)).enumerate() {
        let rows = PlaneRows::copy(plane, (g.h, g.w), (first, end), !UP, local);
        let mut out = position_runs(v, g.c_in * n, c * n, n);
        if UP {
            upsampled_input_block(rows, block, scratch, &mut out[..9]);
        } else {
            input_block(rows, block, scratch, &mut out);
        }
    }
}

/// The `len` values at `offset` of every position's run of `stride` floats (up to 16
/// positions; unused entries are empty).
#[inline(always)]
fn position_runs(data: &mut [f32], stride: usize, offset: usize, len: usize) -> [&mut [f32]; 16] {
    let mut runs: [&mut [f32]; 16] = Default::default();
    for (run, all) in runs.iter_mut().zip(data.chunks_exact_mut(stride)) {
        *run = &mut all[offset..offset + len];
    }
    runs
}

/// The same, read-only, for all 16 positions of the `axis x axis` grid: positions the
/// variant does not store read as `zeros`.
#[inline(always)]
fn grid_runs<'a>(
    g: &Winograd,
    data: &'a [f32],
    stride: usize,
    offset: usize,
    zeros: &'a [f32],
) -> [&'a [f32]; 16] {
    let len = zeros.len();
    let axis = g.axis();
    let mut runs: [&[f32]; 16] = [zeros; 16];
    for (ai, &a) in axis.iter().enumerate() {
        for (bi, &b) in axis.iter().enumerate() {
            let p = ai * axis.len() + bi;
            runs[a * 4 + b] = &data[p * stride + offset..][..len];
        }
    }
    runs
}

/// `y = A^T M A + bias` for the tile rows `block`, into `y_img`.
fn transform_output(
    g: &Winograd,
    m: &[f32],
    block: Range<usize>,
    bias: Option<&[f32]>,
    scratch: &mut [f32],
    y_img: &mut [f32],
) {
    output_kernel::<false>(g, m, &block_of(g, &block), bias, scratch, y_img);
}

avx2_dispatch!(output_kernel => output_channels<const UNUSED>(
    g: &Winograd, m: &[f32], block: &Block, bias: Option<&[f32]>, scratch: &mut [f32],
    y_img: &mut [f32]
));

#[inline(always)]
fn output_channels<const UNUSED: bool>(
    g: &Winograd,
    m: &[f32],
    block: &Block,
    bias: Option<&[f32]>,
    scratch: &mut [f32],
    y_img: &mut [f32],
) {
    let n = block.tiles();
    let (zeros, scratch) = scratch.split_at_mut(n);
    zeros.fill(0.0);
    let zeros: &[f32] = zeros;
    let plane_len = g.out_h() * g.out_w();
    for (c, plane) in y_img.chunks_exact_mut(plane_len.max(1)).enumerate() {
        let b = bias.map_or(0.0, |b| b[c]);
        let m_runs = grid_runs(g, m, g.c_out * n, c * n, zeros);
        output_block(&m_runs, b, block, scratch, plane);
    }
}

/// `dM = A dy A^T` of the tile rows `block`, `[position][c_out][tile]`.
fn transform_grad(
    g: &Winograd,
    dy_img: &[f32],
    block: Range<usize>,
    scratch: &mut [f32],
    dm: &mut [f32],
) {
    grad_kernel::<false>(g, dy_img, &block_of(g, &block), scratch, dm);
}

avx2_dispatch!(grad_kernel => grad_channels<const UNUSED>(
    g: &Winograd, dy_img: &[f32], block: &Block, scratch: &mut [f32], dm: &mut [f32]
));

#[inline(always)]
fn grad_channels<const UNUSED: bool>(
    g: &Winograd,
    dy_img: &[f32],
    block: &Block,
    scratch: &mut [f32],
    dm: &mut [f32],
) {
    let n = block.tiles();
    let plane_len = g.out_h() * g.out_w();
    let dm = &mut dm[..g.positions() * g.c_out * n];
    for (c, plane) in dy_img.chunks_exact(plane_len.max(1)).enumerate() {
        let mut out = position_runs(dm, g.c_out * n, c * n, n);
        grad_block(plane, block, g.axis(), scratch, &mut out[..g.positions()]);
    }
}

/// Adds the adjoint input transform of `dV` (tile rows `block`) into `dx_img`.
fn transform_input_adjoint(
    g: &Winograd,
    dv: &[f32],
    block: Range<usize>,
    scratch: &mut [f32],
    dx_img: &mut [f32],
) {
    let block = block_of(g, &block);
    if g.upsampled {
        adjoint_kernel::<true>(g, dv, &block, scratch, dx_img);
    } else {
        adjoint_kernel::<false>(g, dv, &block, scratch, dx_img);
    }
}

avx2_dispatch!(adjoint_kernel => adjoint_channels<const UP>(
    g: &Winograd, dv: &[f32], block: &Block, scratch: &mut [f32], dx_img: &mut [f32]
));

#[inline(always)]
fn adjoint_channels<const UP: bool>(
    g: &Winograd,
    dv: &[f32],
    block: &Block,
    scratch: &mut [f32],
    dx_img: &mut [f32],
) {
    let n = block.tiles();
    let stride = g.c_in * n;
    for (c, plane) in dx_img.chunks_exact_mut((g.h * g.w).max(1)).enumerate() {
        let mut runs: [&[f32]; 16] = [&[]; 16];
        for (p, run) in runs.iter_mut().enumerate().take(g.positions()) {
            *run = &dv[p * stride + c * n..][..n];
        }
        if UP {
            let mut up_runs: [&[f32]; 9] = [&[]; 9];
            up_runs.copy_from_slice(&runs[..9]);
            upsampled_input_adjoint_block(&up_runs, (g.h, g.w), block, scratch, plane);
        } else {
            input_adjoint_block(&runs, (g.h, g.w), block, scratch, plane);
        }
    }
}

fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
