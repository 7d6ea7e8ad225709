//! A safe, bounds-checked front for the `gemm` crate on strided f32 matrices.

use gemm::Parallelism;

/// A read-only strided view of a matrix stored in a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major `rows x cols` matrix at the start of `data`.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// A row-major `rows x cols` matrix whose rows are `row_stride` apart.
    pub(crate) fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, as a view (no copy; gemm packs it anyway).
    pub(crate) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// One past the largest index the view touches.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
    }
}

/// How the destination of a matmul is laid out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DstLayout {
    /// Row-major with the given row stride.
    RowMajor(usize),
    /// Column-major with the given column stride, i.e. the transpose is stored
    /// row-major. gemm's microkernels write columns, so this can be faster.
    ColMajor(usize),
}

/// `dst = lhs * rhs` (or `dst += lhs * rhs` with `accumulate`).
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_layout: DstLayout,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let (dst_row_stride, dst_col_stride) = match dst_layout {
        DstLayout::RowMajor(stride) => (stride, 1),
        DstLayout::ColMajor(stride) => (1, stride),
    };
    // These guard the unsafe call below; only a bug in this crate can trip them.
    assert_eq!(rhs.rows, k, "matmul inner dimensions differ");
    assert!(lhs.extent() <= lhs.data.len() && rhs.extent() <= rhs.data.len());
    let dst_view = Mat {
        data: &[],
        rows: m,
        cols: n,
        row_stride: dst_row_stride,
        col_stride: dst_col_stride,
    };
    assert!(dst_view.extent() <= dst.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: every index gemm touches is inside the slices (checked above), `dst` is
    // borrowed mutably and cannot alias `lhs`/`rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_col_stride as isize,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_product_with_transposes() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|v| v as f32 - 5.0).collect(); // 3x4
        let mut c = vec![1.0f32; 8];
        matmul(
            &mut c,
            DstLayout::RowMajor(4),
            Mat::row_major(&a, 2, 3),
            Mat::row_major(&b, 3, 4),
            true,
            Parallelism::None,
        );
        for i in 0..2 {
            for j in 0..4 {
                let want: f32 = 1.0 + (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum::<f32>();
                assert_eq!(c[i * 4 + j], want);
            }
        }
        // (b^T)^T a^T... check a transposed view: a^T (3x2) times a (2x3).
        let mut d = vec![0.0f32; 9];
        let at = Mat::row_major(&a, 2, 3).t();
        let a_mat = Mat::row_major(&a, 2, 3);
        matmul(
            &mut d,
            DstLayout::RowMajor(3),
            at,
            a_mat,
            false,
            Parallelism::None,
        );
        let mut e = vec![0.0f32; 9];
        matmul(
            &mut e,
            DstLayout::ColMajor(3),
            at,
            a_mat,
            false,
            Parallelism::None,
        );
        for i in 0..3 {
            for j in 0..3 {
                let want: f32 = (0..2).map(|k| a[k * 3 + i] * a[k * 3 + j]).sum();
                assert_eq!(d[i * 3 + j], want);
                assert_eq!(e[j * 3 + i], want);
            }
        }
    }
}
