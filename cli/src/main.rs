//! The `tether` command.

use std::process::ExitCode;

const USAGE: &str = "\
tether: keep a worker session in sync with a server

USAGE:
    tether <COMMAND> [OPTIONS]

No commands are available in this build yet.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("tether: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
