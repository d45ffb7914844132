//! `tether sim --crash` and `tether sim --fleet N`: the world's crash and fleet scenarios, a
//! sweep of seeds or one seed's trace.

use std::ops::Range;
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use tether_core::budget::{MILLI, RetryBudgetConfig};
use tether_sim::{CrashConfig, CrashReport, FleetConfig, FleetReport, run_crashes, run_fleet};

/// Events per crash run (and a quarter as many patches).
const CRASH_EVENTS: u64 = 120;

/// The fleet's shared retry budget, by name: `aws`, `grpc` or `none`.
pub fn budget(name: &str) -> Option<RetryBudgetConfig> {
    match name {
        "aws" => Some(RetryBudgetConfig::aws_standard()),
        "grpc" => Some(RetryBudgetConfig::grpc(100, 100).with_refill_per_sec(2 * MILLI)),
        _ => None,
    }
}

/// Runs `run` for every seed of `seeds` on `threads` threads; the results in seed order, and
/// the seconds it took.
pub(crate) fn sweep<R: Send>(
    seeds: Range<u64>,
    threads: u64,
    run: impl Fn(u64) -> R + Sync,
) -> (Vec<R>, f64) {
    let started = Instant::now();
    let (start, end) = (seeds.start, seeds.end);
    let run = &run;
    let mut results: Vec<(u64, R)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (start..end)
                        .skip(t as usize)
                        .step_by(threads as usize)
                        .map(|seed| (seed, run(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a simulator thread panicked"))
            .collect()
    });
    results.sort_by_key(|(seed, _)| *seed);
    let elapsed = started.elapsed().as_secs_f64();
    (results.into_iter().map(|(_, r)| r).collect(), elapsed)
}

/// The first line of a sweep's summary.
fn headline(what: &str, runs: usize, failed: usize, elapsed: f64) {
    out!(
        "{runs} {what} runs in {elapsed:.2} s ({:.0} runs/s): {} passed, {failed} failed",
        runs as f64 / elapsed.max(1e-9),
        runs - failed,
    );
}

/// The end of a run's trace: what it broke, and the exit status.
fn verdict(violations: &[String]) -> ExitCode {
    if violations.is_empty() {
        out!("every invariant held");
        ExitCode::SUCCESS
    } else {
        for violation in violations {
            out!("VIOLATION: {violation}");
        }
        ExitCode::from(1)
    }
}

/// The failed seeds of a sweep, and the exit status.
fn failures(failed: &[(u64, &[String])], replay: &str) -> ExitCode {
    for (seed, violations) in failed {
        out!("FAILED seed {seed}:");
        for violation in *violations {
            out!("    {violation}");
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        out!("replay one with: {replay}");
        ExitCode::from(1)
    }
}

fn crash_run(seed: u64, traced: bool) -> CrashReport {
    let mut config = CrashConfig::new(seed, CRASH_EVENTS);
    config.trace = traced;
    // The crash configuration is valid by construction.
    run_crashes(&config).expect("the built-in crash configuration is valid")
}

/// `--crash`: every seed of `seeds`.
pub fn crash_sweep(seeds: Range<u64>, threads: u64) -> ExitCode {
    let (results, elapsed) = sweep(seeds, threads, |seed| crash_run(seed, false));
    let failed: Vec<(u64, &[String])> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| (r.seed, r.violations.as_slice()))
        .collect();
    headline("crash", results.len(), failed.len(), elapsed);
    let sum = |f: fn(&CrashReport) -> u64| results.iter().map(f).sum::<u64>();
    out!(
        "crashes {}, events {} (acknowledged {}, cut off by a crash {}), restored after a \
         crash {}, duplicates filtered {}, answers lost {}, store writes lost {}, requests {}, \
         faults {}",
        sum(|r| u64::from(r.crashes)),
        sum(|r| r.events),
        sum(|r| r.acknowledged),
        sum(|r| r.cut_off),
        sum(|r| r.restored),
        sum(|r| r.duplicates),
        sum(|r| r.lost_answers),
        sum(|r| r.lost_store_jobs),
        sum(|r| r.requests.0),
        sum(|r| r.requests.1),
    );
    failures(&failed, "tether sim --crash --trace SEED")
}

/// `--crash --trace SEED`: one run's trace, then its summary.
pub fn crash_trace(seed: u64) -> ExitCode {
    let report = crash_run(seed, true);
    if let Some(trace) = &report.trace {
        print_trace(trace.as_str());
    }
    let config = CrashConfig::new(seed, CRASH_EVENTS);
    out!(
        "seed {seed}: {} crashes, store jobs take {} ms, sync {:?}, {}; {} events ({} \
         acknowledged, {} cut off), {} restored, {} duplicates filtered",
        report.crashes,
        config.store_latency.as_millis(),
        config.policy,
        if config.register {
            "each process registers"
        } else {
            "epoch 1 given"
        },
        report.events,
        report.acknowledged,
        report.cut_off,
        report.restored,
        report.duplicates,
    );
    verdict(&report.violations)
}

fn fleet_run(
    seed: u64,
    sessions: usize,
    budget: Option<RetryBudgetConfig>,
    traced: bool,
) -> FleetReport {
    let mut config = FleetConfig::new(seed, sessions);
    config.budget = budget;
    config.trace = traced;
    // The fleet configuration is valid by construction.
    run_fleet(&config).expect("the built-in fleet configuration is valid")
}

fn fleet_summary(report: &FleetReport) -> String {
    format!(
        "sent {}, delivered {}, handed back {}; {} requests during the outage; retries granted {} \
         ({} during the outage); at most {} requests a second from the outage on; last event \
         stored at {}",
        report.sent,
        report.delivered,
        report.handed_back,
        report.requests_in_outage,
        report.retries,
        report.retries_in_outage,
        report.peak_requests_per_sec,
        report
            .last_delivery
            .map_or_else(|| "never".to_string(), |at| at.to_string()),
    )
}

/// `--fleet N`: every seed of `seeds`, each a fleet of `sessions`.
pub fn fleet_sweep(
    seeds: Range<u64>,
    threads: u64,
    sessions: usize,
    budget_name: &str,
) -> ExitCode {
    let budget = budget(budget_name);
    let (results, elapsed) = sweep(seeds, threads, |seed| {
        fleet_run(seed, sessions, budget, false)
    });
    let failed: Vec<(u64, &[String])> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| (r.seed, r.violations.as_slice()))
        .collect();
    headline(
        &format!("fleet ({sessions} sessions)"),
        results.len(),
        failed.len(),
        elapsed,
    );
    let total = |f: fn(&FleetReport) -> u64| results.iter().map(f).sum::<u64>();
    let most = |f: fn(&FleetReport) -> u64| results.iter().map(f).max().unwrap_or(0);
    out!(
        "sent {}, delivered {}, handed back {}; requests during the outage {}; retries granted {} \
         ({} during the outage); the busiest second from the outage on {} requests",
        total(|r| r.sent),
        total(|r| r.delivered),
        total(|r| r.handed_back),
        total(|r| r.requests_in_outage),
        total(|r| r.retries),
        total(|r| r.retries_in_outage),
        most(|r| r.peak_requests_per_sec),
    );
    failures(
        &failed,
        &format!("tether sim --fleet {sessions} --budget {budget_name} --trace SEED"),
    )
}

/// `--fleet N --trace SEED`: one run's trace, then its summary.
pub fn fleet_trace(seed: u64, sessions: usize, budget: Option<RetryBudgetConfig>) -> ExitCode {
    let report = fleet_run(seed, sessions, budget, true);
    if let Some(trace) = &report.trace {
        print_trace(trace.as_str());
    }
    out!("seed {seed}: {}", fleet_summary(&report));
    verdict(&report.violations)
}

/// Writes `args` to stdout (see the `out!` macro). A broken pipe drops the output quietly;
/// another failure to write is said once on stderr.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    static GONE: AtomicBool = AtomicBool::new(false);
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tether sim: cannot write the output: {e}");
        }
    }
}

/// Writes a trace to stdout, as [`write_out`] does.
pub fn print_trace(text: &str) {
    write_out(format_args!("{text}"));
}
