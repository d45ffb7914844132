//! Progress on stderr: an indicatif bar when stderr is a terminal, plain lines otherwise (one
//! per tenth of the total, so logs stay short).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of `done` out of a known or unknown total.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    what: &'static str,
    next_line: AtomicU64,
}

impl Progress {
    /// Progress towards `total` (a bar) or of an unknown total (a spinner); `what` names the
    /// unit in plain lines, e.g. "delivered".
    pub fn new(total: Option<u64>, what: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(total) => (
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                    "[{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
                ),
                None => (
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                    "[{elapsed_precise}] {spinner} {pos} {msg}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            total,
            what,
            next_line: AtomicU64::new(total.map_or(0, |t| t / 10)),
        }
    }

    /// `done` so far, with a short message for the bar.
    pub fn set(&self, done: u64, message: String) {
        match (&self.bar, self.total) {
            (Some(bar), _) => {
                bar.set_position(done);
                bar.set_message(message);
            }
            (None, Some(total)) => {
                let step = (total / 10).max(1);
                let next = self.next_line.load(Ordering::Relaxed);
                if done >= next && next > 0 {
                    eprintln!("{} {done}/{total}", self.what);
                    let after = (done / step + 1) * step;
                    self.next_line.store(after, Ordering::Relaxed);
                }
            }
            (None, None) => {}
        }
    }

    /// A line on stderr that does not tear the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Takes the bar off the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
