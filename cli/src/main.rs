//! The `tether` command: `demo`, `serve`, `pipe`, `threads`, `outbox` and `sim`.
//!
//! Each subcommand is one module with clap-derived arguments and a `run(args) -> ExitCode`;
//! adding one is one module, one variant of [`args::Command`] and one match arm below.

/// `println!` for the simulator's reports: a reader that stopped early (`tether sim --trace 7 |
/// head`) is not an error, so the rest of the output goes nowhere instead of a panic on the
/// broken pipe, and the command still finishes (an `--svg` is still written).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::sim_world::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

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

/// mimalloc instead of glibc's malloc: the simulator's sweep spent a fifth to a quarter of its
/// time in the allocator (benches/README.md, "Through the world").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
