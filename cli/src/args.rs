//! The command line, with clap (derive): one [`Cli`] with a subcommand per module.
//!
//! Help and usage errors keep the command's own shape: a usage error prints
//! `tether <command>: <what is wrong>` and the command's help, and exits with
//! [`USAGE_ERROR`]; `--help` prints the help to stdout and exits 0.

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

/// The exit code of a usage error.
pub const USAGE_ERROR: u8 = 2;

/// The help layout of a subcommand named `$name`.
macro_rules! help_template {
    ($name:literal) => {
        concat!(
            "tether ",
            $name,
            ": {about}\n\nUSAGE:\n    {usage}\n\nOPTIONS:\n{options}{after-help}"
        )
    };
}
pub(crate) use help_template;

/// keep a worker session in sync with a server
#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    help_template = "{before-help}tether: {about}\n\nUSAGE:\n    tether <COMMAND> [OPTIONS]\n\n\
                     COMMANDS:\n{subcommands}\n\nRun `tether <COMMAND> --help` for a command's options.\n"
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// run a session against an in-process server with injected faults, and check it
    Demo(crate::demo::DemoArgs),
    /// run the reference server
    Serve(crate::serve::ServeArgs),
    /// send JSON Lines from stdin through a session
    Pipe(crate::pipe::PipeArgs),
    /// bridge thread sync to JSON Lines: edits on stdin, remote changes and statuses on stdout
    Threads(crate::threads::ThreadsArgs),
    /// show, export or discard what a durable outbox keeps
    Outbox(crate::outbox::OutboxArgs),
    /// run the deterministic simulator over many seeds, or trace one
    Sim(crate::sim::SimArgs),
}

/// Parses the process's arguments; `Err` is the exit code after help, a version or a usage
/// error was printed.
pub fn parse() -> Result<Cli, ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 1 {
        // No command: the help, as `tether --help` prints it.
        let _ = Cli::command().print_help();
        return Err(ExitCode::SUCCESS);
    }
    Cli::try_parse_from(&args).map_err(|e| {
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let command = args.get(1).map(String::as_str).unwrap_or_default();
        print_usage_error(command, &message(&e));
        ExitCode::from(USAGE_ERROR)
    })
}

/// A clap error in the command's words: the flag it is about, first.
fn message(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(s)) => s.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let flag = arg.split([' ', '=']).next().unwrap_or_default().to_owned();
    match e.kind() {
        ErrorKind::UnknownArgument if flag.starts_with("--") => format!("unknown flag `{flag}`"),
        ErrorKind::UnknownArgument => format!("unexpected argument `{arg}`"),
        ErrorKind::MissingRequiredArgument => format!("{flag} is required"),
        ErrorKind::InvalidSubcommand => match e.get(ContextKind::InvalidSubcommand) {
            Some(ContextValue::String(s)) => format!("unknown command `{s}`"),
            _ => "unknown command".into(),
        },
        _ => {
            // clap's own sentence, without its `error: ` prefix and its usage lines.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    }
}

/// Prints a usage error with the command's help (or the top-level help).
pub fn print_usage_error(command: &str, message: &str) {
    let mut cli = Cli::command();
    cli.build();
    let help = match cli.find_subcommand_mut(command) {
        Some(sub) => sub.render_help(),
        None => cli.render_help(),
    };
    match cli.find_subcommand(command) {
        Some(_) => eprintln!("tether {command}: {message}\n\n{help}"),
        None => eprintln!("tether: {message}\n\n{help}"),
    }
}

/// Prints a usage error found after parsing and returns exit code 2.
pub fn usage_error(command: &str, message: impl fmt::Display) -> ExitCode {
    print_usage_error(command, &message.to_string());
    ExitCode::from(USAGE_ERROR)
}

/// The runtime a session runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// `tether-blocking`.
    Blocking,
    /// `tether-smol`, on smol's global executor.
    Smol,
    /// `tether-tokio`, on a tokio runtime the command owns.
    Tokio,
}

impl FromStr for Runtime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blocking" => Ok(Runtime::Blocking),
            "smol" => Ok(Runtime::Smol),
            "tokio" => Ok(Runtime::Tokio),
            _ => Err("expected `blocking`, `smol` or `tokio`".into()),
        }
    }
}

/// A number of seconds, at least 0, as a `Duration`.
pub fn seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|_| "must be a number of seconds, at least 0".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> String {
        let args = std::iter::once("tether").chain(args.iter().copied());
        message(&Cli::try_parse_from(args).unwrap_err())
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(err(&["serve", "--nope"]), "unknown flag `--nope`");
        assert_eq!(err(&["pipe"]), "--url is required");
        assert_eq!(err(&["threads"]), "--url is required");
        assert!(err(&["threads", "--url", "x", "--runtime", "x"]).contains("`tokio`"));
        assert_eq!(err(&["nope"]), "unknown command `nope`");
        assert!(err(&["demo", "--events", "many"]).contains("--events"));
        assert!(
            err(&["demo", "--runtime", "x"]).contains("expected `blocking`, `smol` or `tokio`")
        );
        assert!(err(&["demo", "--events"]).contains("--events"));
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
