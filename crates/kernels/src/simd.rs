//! Vectorisable scalar math (exp, sigmoid, lane sums) and a runtime switch that compiles
//! hot loops with AVX2 when the CPU has it. The crate is built for baseline x86-64 (SSE2),
//! so without the switch elementwise loops would use 4-wide vectors and call libm's
//! scalar `expf`.

/// True when the CPU has AVX2 and FMA (checked once, then cached by std).
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name<const FLAG: bool>(args)` that runs the `#[inline(always)]` kernel
/// `$kernel::<FLAG>(args)` from a copy compiled with AVX2+FMA when the CPU has them.
/// (A closure-based switch does not work: LLVM declines to inline big closures into the
/// target-feature function, leaving the loops compiled for SSE2.)
macro_rules! avx2_dispatch {
    ($name:ident => $kernel:ident <const $flag:ident> ($($arg:ident : $ty:ty),* $(,)?)) => {
        fn $name<const $flag: bool>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn with_avx2<const $flag: bool>($($arg: $ty),*) {
                    $kernel::<$flag>($($arg),*)
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: the CPU features were detected just above.
                    return unsafe { with_avx2::<$flag>($($arg),*) };
                }
            }
            $kernel::<$flag>($($arg),*)
        }
    };
}
pub(crate) use avx2_dispatch;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in a part exact in few bits and a remainder (Cody-Waite range reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
// Adding 1.5 * 2^23 rounds an f32 of magnitude < 2^22 to the nearest integer, which then
// sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// e^x with ~2 ulp relative error on [-87, 88], branch-free so loops vectorise.
/// Inputs outside that range are clamped (results saturate near 0 or 2.4e38).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Minimax polynomial for (e^r - 1 - r) / r^2 on |r| <= ln2 / 2.
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * (r * r) + r + 1.0;
    let n_int = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let two_to_n = f32::from_bits(n_int.wrapping_add(127).wrapping_shl(23));
    e_r * two_to_n
}

/// The logistic function 1 / (1 + e^-x).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

const LANES: usize = 16;

/// Sum of a slice with independent lane accumulators (vectorises; also more accurate
/// than one running sum), combined in f64.
#[inline(always)]
pub(crate) fn sum(values: &[f32]) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().chain(tail).map(|&v| f64::from(v)).sum()
}

/// Sum of (v - center)^2 over a slice, lane-accumulated like [`sum`].
#[inline(always)]
pub(crate) fn sum_sq_dev(values: &[f32], center: f32) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            let d = v - center;
            *lane += d * d;
        }
    }
    let tail_sum: f64 = tail
        .iter()
        .map(|&v| f64::from((v - center) * (v - center)))
        .sum();
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + tail_sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_exp_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let got = f64::from(exp(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    #[test]
    fn exp_saturates_instead_of_overflowing() {
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn lane_sums_match_naive_sums() {
        let values: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin()).collect();
        let naive: f64 = values.iter().map(|&v| f64::from(v)).sum();
        assert!((sum(&values) - naive).abs() < 1e-4);
        let mean = (naive / values.len() as f64) as f32;
        let naive_sq: f64 = values.iter().map(|&v| f64::from(v - mean).powi(2)).sum();
        assert!((sum_sq_dev(&values, mean) - naive_sq).abs() < 1e-4);
    }
}
