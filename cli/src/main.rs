//! The `tether` command: `demo`, `serve`, `pipe` and `sim`.
//!
//! Each subcommand is one module with a `USAGE` and a `run(&[String]) -> ExitCode`; adding one
//! is one module and one match arm below.

mod args;
mod demo;
mod pipe;
mod report;
mod serve;
mod sim;
mod sync_demo;
mod worker;

use std::process::ExitCode;

const USAGE: &str = "\
tether: keep a worker session in sync with a server

USAGE:
    tether <COMMAND> [OPTIONS]

COMMANDS:
    demo     run a session against an in-process server with injected faults, and check it
    serve    run the reference server
    pipe     send JSON Lines from stdin through a session
    sim      run the deterministic simulator over many seeds, or trace one

Run `tether <COMMAND> --help` for a command's options.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("tether {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("demo") => demo::run(rest),
        Some("serve") => serve::run(rest),
        Some("pipe") => pipe::run(rest),
        Some("sim") => sim::run_command(rest),
        Some(other) => {
            eprintln!("tether: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(args::USAGE_ERROR)
        }
    }
}
