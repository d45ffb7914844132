//! What this process holds, read from `/proc/self`: the figures a leak test compares before
//! and after it opens and closes many sessions in one process (DESIGN: nothing outlives its
//! session). Linux only; elsewhere every reading is `None`.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// Threads, open file descriptors and resident memory of this process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resources {
    /// Threads of the process.
    pub threads: usize,
    /// Open file descriptors (sockets included).
    pub fds: usize,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

impl Resources {
    /// Reads the process's figures now; `None` where `/proc/self` cannot be read.
    pub fn now() -> Option<Resources> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        Some(Resources {
            threads: usize::try_from(field("Threads:")?).ok()?,
            fds: fs::read_dir("/proc/self/fd").ok()?.count(),
            rss_kib: field("VmRSS:")?,
        })
    }

    /// Reads until the thread and fd counts are at most `bound` above `baseline`, or `within`
    /// has passed, and returns the last reading. Threads and sockets of a session that just
    /// ended take a moment to finish (a worker leaves its wait, the peer sees the close), so a
    /// leak test waits for them, boundedly, before it compares.
    pub fn settle(baseline: Resources, bound: usize, within: Duration) -> Option<Resources> {
        let until = Instant::now() + within;
        loop {
            let now = Resources::now()?;
            let settled =
                now.threads <= baseline.threads + bound && now.fds <= baseline.fds + bound;
            let late = Instant::now() >= until;
            if settled || late {
                return Some(now);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether this reading (taken after a test's sessions) stayed within `slack` threads and
    /// fds, and `rss_slack_kib` of memory, of `baseline`; `Err` says what grew and by how much.
    pub fn within(
        self,
        baseline: Resources,
        slack: usize,
        rss_slack_kib: u64,
    ) -> Result<(), String> {
        let mut grew = Vec::new();
        if self.threads > baseline.threads + slack {
            grew.push(format!("threads {} -> {}", baseline.threads, self.threads));
        }
        if self.fds > baseline.fds + slack {
            grew.push(format!("fds {} -> {}", baseline.fds, self.fds));
        }
        if self.rss_kib > baseline.rss_kib + rss_slack_kib {
            grew.push(format!(
                "RSS {} KiB -> {} KiB",
                baseline.rss_kib, self.rss_kib
            ));
        }
        if grew.is_empty() {
            Ok(())
        } else {
            Err(grew.join(", "))
        }
    }
}
