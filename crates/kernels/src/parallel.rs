//! How kernels spread a batch over threads, and per-thread scratch buffers.
//!
//! Thread count follows candle (`get_num_threads`, which honours `RAYON_NUM_THREADS`) and
//! the work runs on rayon's global pool, the same one candle's own ops use.

use std::cell::Cell;
use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

/// Threads the kernels may use.
pub(crate) fn num_threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Parallelism to hand to `gemm` when the caller itself is not parallel.
pub(crate) fn gemm_parallelism(threads: usize) -> Parallelism {
    if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// Splits `0..n` into `parts` contiguous ranges whose lengths differ by at most one.
pub(crate) fn split_ranges(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    (0..parts)
        .map(|i| (i * n / parts)..((i + 1) * n / parts))
        .collect()
}

/// Runs `work(images, out_chunk, gemm_parallelism)` over contiguous chunks of a batch of
/// `batch` images; `out` holds `out_per_image` values per image and is split to match.
///
/// Large batches run chunks in parallel with single-threaded gemm inside (no fork/join per
/// matmul); small batches run as one chunk and let gemm use the threads.
pub(crate) fn over_batch<R: Send>(
    batch: usize,
    out: &mut [f32],
    out_per_image: usize,
    work: impl Fn(Range<usize>, &mut [f32], Parallelism) -> R + Sync,
) -> Vec<R> {
    let threads = num_threads();
    let balanced = batch >= 4 * threads || (batch >= threads && batch.is_multiple_of(threads));
    if threads == 1 || !balanced {
        return vec![work(0..batch, out, gemm_parallelism(threads))];
    }
    // A few chunks per thread so a thread slowed by other processes gets less work.
    let parts = (2 * threads).min(batch);
    let ranges = split_ranges(batch, parts);
    let mut chunks = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for range in &ranges {
        let (head, tail) = rest.split_at_mut(range.len() * out_per_image);
        chunks.push(head);
        rest = tail;
    }
    ranges
        .into_par_iter()
        .zip(chunks)
        .map(|(range, chunk)| work(range, chunk, Parallelism::None))
        .collect()
}

thread_local! {
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Lends `work` a buffer of `len` floats with arbitrary contents, reused across calls on
/// the same thread so big im2col buffers are not reallocated per layer.
/// Nested use (e.g. rayon stealing another kernel call onto this thread) just allocates.
pub(crate) fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buffer = SCRATCH.with(Cell::take);
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = work(&mut buffer[..len]);
    SCRATCH.with(|cell| {
        let other = cell.take();
        cell.set(if other.len() > buffer.len() {
            other
        } else {
            buffer
        });
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ranges_covers_everything_once() {
        for n in 0..20 {
            for parts in 1..6 {
                let ranges = split_ranges(n, parts);
                let flat: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..n).collect::<Vec<_>>());
                let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let spread = lens.iter().max().unwrap_or(&0) - lens.iter().min().unwrap_or(&0);
                assert!(spread <= 1, "n={n} parts={parts} lens={lens:?}");
            }
        }
    }

    #[test]
    fn over_batch_hands_each_image_its_own_output() {
        let (batch, per_image) = (13, 3);
        let mut out = vec![0.0f32; batch * per_image];
        over_batch(batch, &mut out, per_image, |images, chunk, _| {
            for (slot, image) in chunk.chunks_mut(per_image).zip(images) {
                slot.fill(image as f32);
            }
        });
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, (i / per_image) as f32);
        }
    }
}
