//! A runtime switch that compiles hot loops with AVX2 + FMA when the CPU has them (the
//! crate is built for baseline x86-64, whose 4-wide SSE2 loops run at half the speed),
//! and lane-wise sums that vectorise.
//!
//! Rust never contracts `a * b + c` into an FMA on its own, so both copies of a kernel
//! give bit-identical results; only the speed differs.

/// Defines `$vis fn $name(args) -> ret` that runs the `#[inline(always)]` function
/// `$kernel(args)` from a copy compiled with AVX2 + FMA when the CPU supports them.
macro_rules! avx2_dispatch {
    ($vis:vis fn $name:ident => $kernel:ident ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU features were detected just above.
                    return unsafe { with_avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}
pub(crate) use avx2_dispatch;

pub(crate) const LANES: usize = 8;

/// `(sum f(i), sum g(i))` over `0..len` with `LANES` independent f32 accumulators
/// (vectorises, and is more accurate than one running sum), returned in f64.
#[inline(always)]
pub(crate) fn lane_sums2(len: usize, mut terms: impl FnMut(usize) -> (f32, f32)) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; LANES], [0f32; LANES]);
    let whole = len / LANES * LANES;
    for base in (0..whole).step_by(LANES) {
        for lane in 0..LANES {
            let (p, q) = terms(base + lane);
            a[lane] += p;
            b[lane] += q;
        }
    }
    let (mut sa, mut sb) = (0f64, 0f64);
    for lane in 0..LANES {
        sa += f64::from(a[lane]);
        sb += f64::from(b[lane]);
    }
    for i in whole..len {
        let (p, q) = terms(i);
        sa += f64::from(p);
        sb += f64::from(q);
    }
    (sa, sb)
}
