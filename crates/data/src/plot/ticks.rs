//! Axis ranges and tick positions: 1-2-5 steps on linear axes, decades on log axes, and
//! the labels written beside them.
//!
//! A linear axis is widened to whole steps around the data, so its ends carry labels,
//! unless that would leave much of it empty (then it is the data range plus 5%).
//! A log axis is widened to whole decades; when it spans two decades or fewer, 2x and 5x
//! each decade are labelled too, so there are always several labels to read.

/// Tick positions covering `[lo, hi]` with a 1, 2 or 5 x 10^k step chosen so there are
/// at most `max_ticks` intervals (at least one). The first tick is at or below `lo`,
/// the last at or above `hi`. Empty when the inputs are not finite.
pub fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    match LinearSteps::fit(lo, hi, max_ticks) {
        Some(s) => s.positions(),
        None => Vec::new(),
    }
}

/// Powers of ten from the decade at or below `lo` to the one at or above `hi` (at
/// least two). Empty unless `0 < lo <= hi` are finite.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    match decades(lo, hi) {
        Some((a, b)) => (a..=b).map(pow10).collect(),
        None => Vec::new(),
    }
}

/// A finite linear range in whole steps: ticks at `k x mantissa x 10^exponent` for
/// `k` in `first..first + count`.
#[derive(Clone, Copy, Debug)]
struct LinearSteps {
    first: i64,
    count: i64,
    mantissa: f64,
    exponent: i32,
}

impl LinearSteps {
    fn fit(lo: f64, hi: f64, max_ticks: usize) -> Option<Self> {
        if !lo.is_finite() || !hi.is_finite() {
            return None;
        }
        let (lo, hi) = widen_if_flat(lo.min(hi), lo.max(hi));
        let target = max_ticks.max(1) as f64;
        let raw = (hi - lo) / target;
        let start = raw.log10().floor();
        if !start.is_finite() {
            return None;
        }
        // Smallest 1-2-5 step that keeps the interval count within the target.
        for exponent in (start as i32)..=(start as i32 + 2) {
            for mantissa in [1.0, 2.0, 5.0] {
                let step = mantissa * pow10(exponent);
                let (first, last) = ((lo / step).floor(), (hi / step).ceil());
                if last - first <= target + 1e-9 && (last - first) >= 1.0 {
                    let count = (last - first) as i64 + 1;
                    return Some(LinearSteps {
                        first: first as i64,
                        count,
                        mantissa,
                        exponent,
                    });
                }
            }
        }
        None
    }

    /// The finest 1-2-5 steps with between 2 and `max_ticks + 1` ticks inside
    /// `[lo, hi]` (the range is not widened).
    fn inside(lo: f64, hi: f64, max_ticks: usize) -> Option<Self> {
        let start = ((hi - lo) / (max_ticks.max(1) as f64 + 1.0))
            .log10()
            .floor();
        if !start.is_finite() {
            return None;
        }
        for exponent in (start as i32)..=(start as i32 + 2) {
            for mantissa in [1.0, 2.0, 5.0] {
                let step = mantissa * pow10(exponent);
                let (first, last) = ((lo / step).ceil(), (hi / step).floor());
                let count = (last - first) as i64 + 1;
                if count >= 2 && count <= max_ticks as i64 + 1 {
                    let first = first as i64;
                    return Some(LinearSteps {
                        first,
                        count,
                        mantissa,
                        exponent,
                    });
                }
            }
        }
        None
    }

    /// Tick `k`, computed as an integer over a power of ten so 0.6 prints as 0.6
    /// rather than 0.6000000000000001.
    fn at(&self, k: i64) -> f64 {
        let units = k as f64 * self.mantissa;
        if self.exponent < 0 {
            units / pow10(-self.exponent)
        } else {
            units * pow10(self.exponent)
        }
    }

    fn positions(&self) -> Vec<f64> {
        (self.first..self.first + self.count)
            .map(|k| self.at(k))
            .collect()
    }

    fn last(&self) -> f64 {
        self.at(self.first + self.count - 1)
    }
}

/// A zero-width range widened so it can be drawn: by 1 around 0, else by 10% of |v|.
fn widen_if_flat(lo: f64, hi: f64) -> (f64, f64) {
    if hi - lo > f64::EPSILON * hi.abs().max(lo.abs()) * 4.0 {
        return (lo, hi);
    }
    let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - pad, hi + pad)
}

fn pow10(e: i32) -> f64 {
    10f64.powi(e)
}

/// Whole steps wider than this multiple of the data range count as wasted axis.
const WASTE_LIMIT: f64 = 1.5;

/// Decades between labels so that `span` decades get at most `max_labels` labels.
fn decade_stride(span: usize, max_labels: usize) -> i32 {
    let need = span.div_ceil(max_labels.saturating_sub(1).max(1)).max(1);
    let nice = [1, 2, 3, 5, 10, 20, 25, 50, 100];
    let stride = nice
        .into_iter()
        .find(|&s| s >= need)
        .unwrap_or(need.div_ceil(100) * 100);
    i32::try_from(stride).unwrap_or(i32::MAX)
}

/// The decade exponents `a < b` enclosing `[lo, hi]`.
fn decades(lo: f64, hi: f64) -> Option<(i32, i32)> {
    let ok = |v: f64| v.is_finite() && v > 0.0;
    if !ok(lo) || !ok(hi) {
        return None;
    }
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    // The nudges keep 1000 in the decade [100, 1000] despite log10 rounding.
    let a = (lo.log10() + 1e-9).floor() as i32;
    let b = (hi.log10() - 1e-9).ceil() as i32;
    Some((a, b.max(a + 1)))
}

/// How an axis is fitted to its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AxisKind {
    /// Linear, widened to whole steps ([`Axis::linear`]).
    Whole,
    /// Linear, whole steps unless wasteful ([`Axis::linear_snug`]).
    Snug,
    /// Logarithmic ([`Axis::log`]).
    Log,
}

impl AxisKind {
    /// An axis of this kind over `[lo, hi]` with at most `max_ticks` intervals.
    pub fn fit(self, lo: f64, hi: f64, max_ticks: usize) -> Axis {
        match self {
            AxisKind::Whole => Axis::linear(lo, hi, max_ticks),
            AxisKind::Snug => Axis::linear_snug(lo, hi, max_ticks),
            AxisKind::Log => Axis::log(lo, hi, max_ticks + 1),
        }
    }
}

/// One axis: its drawn range, labelled ticks and unlabelled minor ticks.
#[derive(Clone, Debug)]
pub(crate) struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub major: Vec<(f64, String)>,
    pub minor: Vec<f64>,
}

impl Axis {
    /// A linear axis over `[lo, hi]` with at most `max_ticks` intervals, widened to
    /// whole steps so both ends are labelled (bars stand on a labelled zero).
    pub fn linear(lo: f64, hi: f64, max_ticks: usize) -> Axis {
        match LinearSteps::fit(lo, hi, max_ticks) {
            Some(s) => Axis::from_steps(&s, s.at(s.first), s.last()),
            None => Axis::linear(0.0, 1.0, max_ticks),
        }
    }

    /// Like [`Axis::linear`], unless whole steps would leave much of the axis empty
    /// (few ticks over data straddling a step, e.g. -0.1..1.1 becoming -2..2): then the
    /// axis is the data range plus 5% each side, with the ticks that fall inside it.
    pub fn linear_snug(lo: f64, hi: f64, max_ticks: usize) -> Axis {
        let whole = Axis::linear(lo, hi, max_ticks);
        if !lo.is_finite() || !hi.is_finite() {
            return whole;
        }
        let (lo, hi) = widen_if_flat(lo.min(hi), lo.max(hi));
        if whole.hi - whole.lo <= WASTE_LIMIT * (hi - lo) {
            return whole;
        }
        let pad = 0.05 * (hi - lo);
        let (lo, hi) = (lo - pad, hi + pad);
        match LinearSteps::inside(lo, hi, max_ticks) {
            Some(s) => Axis::from_steps(&s, lo, hi),
            None => whole,
        }
    }

    fn from_steps(s: &LinearSteps, lo: f64, hi: f64) -> Axis {
        let ticks = s.positions();
        let scientific = ticks.iter().any(|v| v.abs() >= 1e6);
        let major = ticks
            .iter()
            .map(|&v| (v, linear_label(v, s.exponent, scientific)))
            .collect();
        Axis {
            lo,
            hi,
            log: false,
            major,
            minor: Vec::new(),
        }
    }

    /// A log axis over `[lo, hi]` (both > 0) with at most `max_labels` labels.
    pub fn log(lo: f64, hi: f64, max_labels: usize) -> Axis {
        let Some((a, b)) = decades(lo, hi) else {
            return Axis::log(1.0, 10.0, max_labels);
        };
        // With many decades, label every 2, 3, 5, 10, ... and widen the axis to
        // labelled decades that are multiples of the stride (1e-20, 1e-10, 1, ...).
        let every = decade_stride((b - a) as usize, max_labels);
        let (a, b) = (a.div_euclid(every) * every, -(-b).div_euclid(every) * every);
        let span = (b - a) as usize;
        let mut major: Vec<(f64, String)> = (a..=b)
            .step_by(every as usize)
            .map(|e| (pow10(e), log_label(1, e)))
            .collect();
        // Past a few decades, 2x..9x ticks would crowd into a grey band: only the
        // unlabelled decades get minor ticks then.
        if span > 6 {
            let minor = (a..=b)
                .filter(|e| e.rem_euclid(every) != 0)
                .map(pow10)
                .collect();
            let (lo, hi) = (pow10(a), pow10(b));
            return Axis {
                lo,
                hi,
                log: true,
                major,
                minor,
            };
        }
        let mut minor = Vec::new();
        for e in a..b {
            for m in 2..=9 {
                let v = m as f64 * pow10(e);
                // With few decades, 2x and 5x get labels too.
                if span <= 2 && (m == 2 || m == 5) && 3 * span < max_labels {
                    major.push((v, log_label(m, e)));
                } else {
                    minor.push(v);
                }
            }
        }
        major.sort_by(|x, y| x.0.total_cmp(&y.0));
        Axis {
            lo: pow10(a),
            hi: pow10(b),
            log: true,
            major,
            minor,
        }
    }

    /// Where `v` falls along the axis: 0 at `lo`, 1 at `hi`. `None` when `v` cannot be
    /// placed (not finite, or not positive on a log axis).
    pub fn frac(&self, v: f64) -> Option<f64> {
        if !v.is_finite() || (self.log && v <= 0.0) {
            return None;
        }
        let t = if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        t.is_finite().then_some(t)
    }
}

/// A linear tick label with as many decimals as the step needs.
fn linear_label(v: f64, exponent: i32, scientific: bool) -> String {
    if scientific && v != 0.0 {
        let digits = (v.abs().log10().floor() as i32 - exponent).clamp(0, 6) as usize;
        return format!("{v:.digits$e}");
    }
    let decimals = (-exponent).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // "-0.00" after rounding a tiny negative reads as noise.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// A log tick label `m x 10^e`: plain decimals for moderate exponents, else `me<e>`.
fn log_label(m: u32, e: i32) -> String {
    if (-4..=5).contains(&e) {
        let decimals = (-e).max(0) as usize;
        format!("{:.decimals$}", f64::from(m) * pow10(e))
    } else {
        format!("{m}e{e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.major.iter().map(|(_, l)| l.as_str()).collect()
    }

    #[test]
    fn linear_labels_have_just_enough_decimals() {
        assert_eq!(
            labels(&Axis::linear(0.0, 1.0, 5)),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(
            labels(&Axis::linear(-0.04, 0.04, 4)),
            ["-0.04", "-0.02", "0.00", "0.02", "0.04"]
        );
        assert_eq!(labels(&Axis::linear(0.0, 2e6, 2)), ["0", "1e6", "2e6"]);
    }

    #[test]
    fn snug_axes_do_not_waste_most_of_their_length() {
        let whole = Axis::linear(-0.1, 1.1, 2);
        assert_eq!((whole.lo, whole.hi), (-2.0, 2.0));
        let snug = Axis::linear_snug(-0.1, 1.1, 2);
        assert!(snug.lo < -0.1 && snug.lo > -0.2 && snug.hi > 1.1 && snug.hi < 1.2);
        assert!(snug
            .major
            .iter()
            .all(|(v, _)| *v >= snug.lo && *v <= snug.hi));
        assert!(snug.major.len() >= 2);
        // When whole steps fit well, snug keeps them.
        let tidy = Axis::linear_snug(0.02, 0.97, 5);
        assert_eq!((tidy.lo, tidy.hi), (0.0, 1.0));
    }

    #[test]
    fn log_axes_label_decades_with_a_round_stride() {
        let few = Axis::log(3.0, 70.0, 8);
        assert_eq!(labels(&few), ["1", "2", "5", "10", "20", "50", "100"]);
        let many = Axis::log(1e-25, 1e24, 6);
        assert_eq!(
            labels(&many),
            ["1e-30", "1e-20", "1e-10", "1", "1e10", "1e20", "1e30"]
        );
        assert!(many
            .minor
            .iter()
            .all(|v| v.log10().round().rem_euclid(10.0) != 0.0));
    }

    #[test]
    fn frac_maps_the_ends_to_zero_and_one() {
        let lin = Axis::linear(0.0, 10.0, 5);
        assert_eq!(
            (lin.frac(0.0), lin.frac(10.0), lin.frac(5.0)),
            (Some(0.0), Some(1.0), Some(0.5))
        );
        let log = Axis::log(1.0, 100.0, 5);
        assert_eq!(log.frac(10.0), Some(0.5));
        assert_eq!((log.frac(0.0), log.frac(f64::NAN)), (None, None));
    }
}
