//! `tether sim`: the deterministic simulator's seed sweep, or one seed's trace.

use std::ops::Range;
use std::process::ExitCode;

use tether_sim::render::render;
use tether_sim::{Callers, FaultMix, RunConfig, RunReport, WorkloadConfig, run_session};

use crate::args::help_template;

const AFTER_HELP: &str = "\
Each run is a ten-minute worker session in the simulator's world: the real driver around a real
session, its caller on the Tether handle (waiting when a queue is full; by seed, dropping its
handle instead of closing, or giving an observer that panics), against the server model through
a seeded fault plan, with every invariant checked at the end: no event lost, none reordered or
duplicated, the state converged, heartbeat gaps within bounds, give-up exactly by the rules,
nothing after a terminal status, and every waiting caller answered. A failing seed replays to
the same trace with --trace.

--crash runs the crash scenario instead: a worker process with a durable outbox is killed five
times per run (its answers in flight and its unfinished store writes lost) and started again on
its store, through a lossy network; every acknowledged event must land exactly once, in order,
the outbox must end empty and the document converge. --fleet N runs N sessions against servers
that refuse every request from 60 s to 360 s of a 20-minute run, sharing one retry budget
(--budget); every event must land and the retries stay within the budget's token bound. Each
seed is one run of N sessions.

EXIT STATUS:
    0  every seed passed
    1  a seed broke an invariant
    2  usage error
";

/// `tether sim` arguments.
#[derive(Debug, clap::Args)]
#[command(
    help_template = help_template!("sim"),
    after_help = AFTER_HELP,
    override_usage = "tether sim [--seeds A..B] [--faults MIX] [--workload KIND] [--threads N]\n    \
                      tether sim --trace SEED [--faults MIX] [--workload KIND] [--svg FILE]\n    \
                      tether sim --sync [--seeds A..B] [--threads N] | --sync --trace SEED\n    \
                      tether sim --crash [--seeds A..B] [--threads N] | --crash --trace SEED\n    \
                      tether sim --fleet N [--budget KIND] [--seeds A..B] [--threads N] | --fleet N [--budget KIND] --trace SEED"
)]
pub struct SimArgs {
    /// the seeds to run, B excluded
    #[arg(long, value_name = "A..B", default_value = "0..2000", value_parser = parse_seeds)]
    seeds: Range<u64>,
    /// calm | flaky | hostile, or mixed to rotate through the three by seed (none, light and
    /// heavy are accepted for calm, flaky and hostile)
    #[arg(long, value_name = "MIX", default_value = "mixed", value_parser = Mix::parse)]
    faults: Mix,
    /// sweep (light: ~180 events in ten minutes) | default (~7 000 events)
    #[arg(long, value_name = "KIND", default_value = "sweep", value_parser = ["sweep", "default"])]
    workload: String,
    /// worker threads for the sweep (1 to 256)
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,
    /// run one seed and print its trace, one line per input and output
    #[arg(long, value_name = "SEED")]
    trace: Option<u64>,
    /// with --trace: also draw the run's timeline as an SVG into FILE (requests per channel,
    /// faults, partitions, statuses, queue depth)
    #[arg(long, value_name = "FILE", requires = "trace")]
    svg: Option<String>,
    /// thread sync instead: 2 to 5 clients, each a real driver with thread sync on its handle,
    /// edit 1 to 4 shared threads through partitions, cut-offs and the heavy faults on every
    /// route (5xx, 429, lost requests and responses, hangs, garbage bodies); every run checks
    /// that all converge with every edit once and every delete kept
    #[arg(long, conflicts_with_all = ["svg", "workload"])]
    sync: bool,
    /// crash and restart instead: a process with a durable outbox killed five times per run and
    /// started again on its store; every run checks that every acknowledged event lands once,
    /// in order, and the document converges
    #[arg(long, conflicts_with_all = ["svg", "workload", "faults", "sync", "fleet"])]
    crash: bool,
    /// a fleet of N sessions instead, through a five-minute outage, sharing a retry budget;
    /// every run checks that every event lands and the retries stay within the budget's bound
    #[arg(long, value_name = "N", conflicts_with_all = ["svg", "workload", "faults", "sync"],
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    fleet: Option<u64>,
    /// with --fleet: the budget the sessions share: aws (the AWS SDKs' standard quota), grpc
    /// (gRPC's retry throttling, 100 tokens) or none
    #[arg(long, value_name = "KIND", default_value = "aws", requires = "fleet",
          value_parser = ["aws", "grpc", "none"])]
    budget: String,
}

/// Which fault mix a seed runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mix {
    Calm,
    Flaky,
    Hostile,
    Mixed,
}

impl Mix {
    fn parse(s: &str) -> Result<Mix, String> {
        match s {
            "calm" | "none" => Ok(Mix::Calm),
            "flaky" | "light" => Ok(Mix::Flaky),
            "hostile" | "heavy" => Ok(Mix::Hostile),
            "mixed" => Ok(Mix::Mixed),
            other => Err(format!(
                "unknown fault mix `{other}` (calm, flaky, hostile or mixed)"
            )),
        }
    }

    /// The mix for `seed`, and its name.
    fn for_seed(self, seed: u64) -> (&'static str, FaultMix) {
        let pick = match self {
            Mix::Mixed => [Mix::Calm, Mix::Flaky, Mix::Hostile][(seed % 3) as usize],
            other => other,
        };
        match pick {
            Mix::Calm => ("calm", FaultMix::calm()),
            Mix::Flaky => ("flaky", FaultMix::flaky()),
            _ => ("hostile", FaultMix::hostile()),
        }
    }
}

fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("--seeds wants A..B, e.g. 0..2000, not `{s}`");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= b {
        return Err(format!("--seeds {s} is empty"));
    }
    Ok(a..b)
}

struct Options {
    seeds: Range<u64>,
    mix: Mix,
    workload: WorkloadConfig,
    workload_name: String,
    threads: u64,
    trace: Option<u64>,
    svg: Option<String>,
}

fn options(args: &SimArgs) -> Options {
    let workload = match args.workload.as_str() {
        "default" => WorkloadConfig::default(),
        _ => WorkloadConfig::sweep(),
    };
    Options {
        svg: args.svg.clone(),
        seeds: args.seeds.clone(),
        mix: args.faults,
        workload,
        workload_name: args.workload.clone(),
        threads: args.threads,
        trace: args.trace,
    }
}

fn run_seed(seed: u64, options: &Options, traced: bool) -> (&'static str, RunReport) {
    let (name, mix) = options.mix.for_seed(seed);
    let mut config = RunConfig::new(seed, mix);
    config.workload = options.workload.clone();
    config.trace = traced;
    config.timeline = traced && options.svg.is_some();
    config.callers = Callers::for_seed(seed);
    // The mixes and the workloads above are valid by construction.
    let report = run_session(&config).expect("the built-in simulator configuration is valid");
    (name, report)
}

pub fn run_command(args: &SimArgs) -> ExitCode {
    if args.crash {
        return match args.trace {
            Some(seed) => crate::sim_world::crash_trace(seed),
            None => crate::sim_world::crash_sweep(args.seeds.clone(), args.threads),
        };
    }
    if let Some(sessions) = args.fleet {
        let sessions = usize::try_from(sessions).unwrap_or(usize::MAX);
        let budget = crate::sim_world::budget(&args.budget);
        return match args.trace {
            Some(seed) => crate::sim_world::fleet_trace(seed, sessions, budget),
            None => crate::sim_world::fleet_sweep(
                args.seeds.clone(),
                args.threads,
                sessions,
                &args.budget,
            ),
        };
    }
    if args.sync {
        return match args.trace {
            Some(seed) => crate::sim_sync::trace(seed),
            None => crate::sim_sync::sweep(args.seeds.clone(), args.threads),
        };
    }
    let options = options(args);
    match options.trace {
        Some(seed) => trace(seed, &options),
        None => sweep(&options),
    }
}

fn trace(seed: u64, options: &Options) -> ExitCode {
    let (name, report) = run_seed(seed, options, true);
    if let Some(trace) = &report.trace {
        crate::sim_world::print_trace(trace.as_str());
    }
    if let (Some(path), Some(mut timeline)) = (&options.svg, report.timeline.clone()) {
        timeline.title = format!(
            "tether sim --trace {seed} --faults {name} --workload {}",
            options.workload_name
        );
        if let Err(e) = std::fs::write(path, render(&timeline)) {
            eprintln!("tether sim: cannot write {path}: {e}");
            return ExitCode::from(1);
        }
    }
    out!("seed {seed} ({name}): final status {}", report.status);
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

fn sweep(options: &Options) -> ExitCode {
    let (results, elapsed) =
        crate::sim_world::sweep(options.seeds.clone(), options.threads, |seed| {
            let (name, report) = run_seed(seed, options, false);
            (seed, name, report)
        });
    let mut failed: Vec<&(u64, &str, RunReport)> =
        results.iter().filter(|(_, _, r)| !r.passed()).collect();
    failed.sort_by_key(|(seed, _, _)| *seed);
    let sum = |f: fn(&RunReport) -> u64| results.iter().map(|(_, _, r)| f(r)).sum::<u64>();
    out!(
        "{} runs in {:.2} s ({:.0} runs/s): {} passed, {} failed",
        results.len(),
        elapsed,
        results.len() as f64 / elapsed.max(1e-9),
        results.len() - failed.len(),
        failed.len()
    );
    out!(
        "events {} (delivered {}, handed back {}), duplicates filtered {}, requests {}, faults {}, patches {}",
        sum(|r| r.stats.events),
        sum(|r| r.stats.delivered),
        sum(|r| r.stats.handed_back),
        sum(|r| r.stats.duplicates),
        sum(|r| r.stats.requests),
        sum(|r| r.stats.faults),
        sum(|r| r.stats.patches),
    );
    for (seed, name, report) in &failed {
        out!("FAILED seed {seed} ({name}):");
        for violation in &report.violations {
            out!("    {violation}");
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        out!("replay one with: tether sim --trace SEED");
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_half_open_ranges() {
        assert_eq!(parse_seeds("3..10").unwrap(), 3..10);
        assert!(parse_seeds("10..3").is_err());
        assert!(parse_seeds("5").is_err());
        assert!(parse_seeds("a..b").is_err());
    }

    #[test]
    fn mixed_rotates_through_the_three_mixes() {
        let names: Vec<_> = (0..3).map(|s| Mix::Mixed.for_seed(s).0).collect();
        assert_eq!(names, ["calm", "flaky", "hostile"]);
        assert_eq!(Mix::parse("heavy").unwrap(), Mix::Hostile);
        assert!(Mix::parse("stormy").is_err());
    }
}
