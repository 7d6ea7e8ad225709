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
    /// When stderr is not a terminal: the time of the last plain line.
    plain: Option<Mutex<Instant>>,
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
    let plain = (!quiet && !terminal).then(|| Mutex::new(Instant::now()));
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
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn maybe_print(&self) {
        let Some(last) = &self.plain else { return };
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < PLAIN_EVERY {
            return;
        }
        *last = Instant::now();
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let eta = self.bar.eta().as_secs();
        eprintln!(
            "[{:>6.0}s] {pos}/{len} {} ({:.2}/s, ETA {}h{:02}m) {}",
            self.bar.elapsed().as_secs_f64(),
            self.unit,
            self.bar.per_sec(),
            eta / 3600,
            eta / 60 % 60,
            self.bar.message()
        );
    }
}
