//! `tether sim --sync`: the thread-sync scenario's seed sweep (N clients, each a real driver
//! with thread sync on its handle, on shared threads in the simulator's world, every route
//! faulted), or one seed's trace.

use std::ops::Range;
use std::process::ExitCode;

use tether_sim::{ThreadFaults, ThreadReport, ThreadRunConfig, run_threads};

/// One seed: 2 to 5 clients, 1 to 4 threads, 5 to 30 edits each, cut-offs and partitions, and
/// the heavy faults on every route (5xx, 429, lost requests and responses, hangs, garbage
/// bodies).
fn run_seed(seed: u64, traced: bool) -> ThreadReport {
    let mut config = ThreadRunConfig::random(seed, ThreadFaults::Heavy);
    config.trace = traced;
    run_threads(&config)
}

/// Every seed of `seeds` on `threads` threads; exit 1 if one broke an invariant.
pub fn sweep(seeds: Range<u64>, threads: u64) -> ExitCode {
    let (results, elapsed) = crate::sim_world::sweep(seeds, threads, |seed| run_seed(seed, false));
    let mut failed: Vec<&ThreadReport> = results.iter().filter(|r| !r.passed()).collect();
    failed.sort_by_key(|r| r.config.seed);
    let sum = |f: fn(&ThreadReport) -> u64| results.iter().map(f).sum::<u64>();
    out!(
        "{} thread-sync runs in {:.2} s ({:.0} runs/s): {} passed, {} failed",
        results.len(),
        elapsed,
        results.len() as f64 / elapsed.max(1e-9),
        results.len() - failed.len(),
        failed.len()
    );
    out!(
        "messages {}, pushes {}, pulls {}, conflicts {}, faults {}",
        sum(|r| r.stats.messages),
        sum(|r| r.stats.pushes),
        sum(|r| r.stats.pulls),
        sum(|r| r.stats.conflicts),
        sum(|r| r.stats.faults),
    );
    for report in &failed {
        out!("FAILED seed {}:", report.config.seed);
        for violation in &report.violations {
            out!("    {violation}");
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        out!("replay one with: tether sim --sync --trace SEED");
        ExitCode::from(1)
    }
}

/// One seed's trace: every request and answer, then the summary.
pub fn trace(seed: u64) -> ExitCode {
    let report = run_seed(seed, true);
    if let Some(trace) = &report.trace {
        crate::sim_world::print_trace(trace.as_str());
    }
    crate::sim_world::write_out(format_args!("{}", report.summary()));
    if report.passed() {
        out!("every invariant held");
        ExitCode::SUCCESS
    } else {
        for violation in &report.violations {
            out!("VIOLATION: {violation}");
        }
        ExitCode::from(1)
    }
}
