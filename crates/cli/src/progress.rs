//! Progress with rate and ETA for every long loop: a live bar on a terminal, a plain
//! line every 30 s when stderr is a file (logs of background and cluster jobs), and
//! nothing under `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const PLAIN_EVERY: Duration = Duration::from_secs(30);

pub struct Progress {
    bar: ProgressBar,
    unit: String,
    /// When stderr is not a terminal: when the last plain line was printed and what
    /// its rate is measured from.
    plain: Option<Mutex<PlainClock>>,
}

/// The plain lines' rate is the mean since the start (or the resume point): items come
/// in bursts (a generator batch, an epoch), which make indicatif's smoothed estimate
/// swing far below the real rate between bursts.
struct PlainClock {
    last_line: Instant,
    since: Instant,
    from: u64,
}

impl PlainClock {
    fn new(from: u64) -> Self {
        let now = Instant::now();
        Self {
            last_line: now,
            since: now,
            from,
        }
    }

    /// Items per second and the estimated time left at position `pos` of `len`.
    fn rate_and_eta(&self, pos: u64, len: u64) -> (f64, Option<Duration>) {
        let secs = self.since.elapsed().as_secs_f64();
        let done = pos.saturating_sub(self.from) as f64;
        let rate = if secs > 0.0 { done / secs } else { 0.0 };
        let eta = (rate > 0.0).then(|| len.saturating_sub(pos) as f64 / rate);
        (rate, eta.and_then(|s| Duration::try_from_secs_f64(s).ok()))
    }
}

/// Progress over `total` items; `unit` names them ("images", "steps").
pub fn bar(total: u64, unit: &str, quiet: bool) -> Progress {
    let bar = ProgressBar::new(total);
    let terminal = std::io::stderr().is_terminal();
    if quiet || !terminal {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        let template = format!(
            "{{spinner}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} \
             ({{per_sec}}, ETA {{eta}}) {{msg}}"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
    }
    let plain = (!quiet && !terminal).then(|| Mutex::new(PlainClock::new(0)));
    Progress {
        bar,
        unit: unit.to_string(),
        plain,
    }
}

impl Progress {
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.maybe_print();
    }

    pub fn set(&self, position: u64, message: String) {
        self.bar.set_position(position);
        self.bar.set_message(message);
        self.maybe_print();
    }

    /// Jump to `position` without counting the jump as progress (a resumed run).
    pub fn resume_at(&self, position: u64) {
        self.bar.set_position(position);
        self.bar.reset_eta();
        if let Some(clock) = &self.plain {
            *clock.lock().unwrap_or_else(|e| e.into_inner()) = PlainClock::new(position);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn maybe_print(&self) {
        let Some(clock) = &self.plain else { return };
        let mut clock = clock.lock().unwrap_or_else(|e| e.into_inner());
        if clock.last_line.elapsed() < PLAIN_EVERY {
            return;
        }
        clock.last_line = Instant::now();
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let (rate, eta) = clock.rate_and_eta(pos, len);
        eprintln!(
            "[{:>6.0}s] {pos}/{len} {} ({}, ETA {}) {}",
            self.bar.elapsed().as_secs_f64(),
            self.unit,
            rate_text(rate),
            eta_text(eta),
            self.bar.message()
        );
    }
}

/// Per second, or per minute / hour for slow units (epochs, runs).
fn rate_text(per_sec: f64) -> String {
    if per_sec >= 1.0 {
        format!("{per_sec:.2}/s")
    } else if per_sec * 60.0 >= 1.0 {
        format!("{:.1}/min", per_sec * 60.0)
    } else {
        format!("{:.2}/h", per_sec * 3600.0)
    }
}

/// `1h05m`, or `--` while nothing has finished yet.
fn eta_text(eta: Option<Duration>) -> String {
    match eta {
        Some(eta) => {
            let secs = eta.as_secs();
            format!("{}h{:02}m", secs / 3600, secs / 60 % 60)
        }
        None => "--".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_hours_and_minutes_or_unknown() {
        assert_eq!(eta_text(Some(Duration::from_secs(3900))), "1h05m");
        assert_eq!(eta_text(None), "--");
    }

    #[test]
    fn slow_rates_are_given_per_minute_or_hour() {
        assert_eq!(rate_text(12.345), "12.35/s");
        assert_eq!(rate_text(0.5), "30.0/min");
        assert_eq!(rate_text(1.0 / 600.0), "6.00/h");
    }

    #[test]
    fn plain_rate_is_the_mean_since_the_resume_point() {
        let mut clock = PlainClock::new(100);
        clock.since -= Duration::from_secs(10);
        let (rate, eta) = clock.rate_and_eta(150, 200);
        assert!((rate - 5.0).abs() < 0.1, "rate {rate}");
        let eta = eta.expect("progress was made").as_secs_f64();
        assert!((eta - 10.0).abs() < 0.3, "eta {eta}");
        assert_eq!(PlainClock::new(7).rate_and_eta(7, 10).1, None);
    }
}
