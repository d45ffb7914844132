//! The `tether` command: `demo`, `serve`, `pipe`, `threads`, `outbox` and `sim`.
//!
//! Each subcommand is one module with clap-derived arguments and a `run(args) -> ExitCode`;
//! adding one is one module, one variant of [`args::Command`] and one match arm below.

mod args;
mod demo;
mod outbox;
mod pipe;
mod progress;
mod report;
mod serve;
mod session;
mod sim;
mod sim_sync;
mod sim_world;
mod sync_demo;
mod threads;

use std::process::ExitCode;

use args::Command;

fn main() -> ExitCode {
    let cli = match args::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Pipe(a) => pipe::run(&a),
        Command::Threads(a) => threads::run(&a),
        Command::Outbox(a) => outbox::run(&a),
        Command::Sim(a) => sim::run_command(&a),
    }
}
