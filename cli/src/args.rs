//! A small hand-written argument parser: `--flag value`, `--flag=value` and `-h`/`--help`.
//!
//! Unknown flags, missing values and bad values are errors that the caller prints with the
//! subcommand's usage, exiting with [`USAGE_ERROR`].

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;

/// The exit code of a usage error.
pub const USAGE_ERROR: u8 = 2;

/// A usage error: printed with the subcommand's usage.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parsed flags of one subcommand, in order.
#[derive(Debug, Default)]
pub struct Args {
    flags: Vec<(String, Option<String>)>,
    /// Whether `-h` or `--help` was given.
    pub help: bool,
}

impl Args {
    /// Parses `args` (after the subcommand), knowing which flags take a value (`valued`) and
    /// which are switches (`switches`).
    pub fn parse(args: &[String], valued: &[&str], switches: &[&str]) -> Result<Args, ArgError> {
        let mut parsed = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "-h" || arg == "--help" {
                parsed.help = true;
                continue;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(ArgError(format!("unexpected argument `{arg}`")));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (flag, None),
            };
            if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => iter
                        .next()
                        .cloned()
                        .ok_or_else(|| ArgError(format!("--{name} needs a value")))?,
                };
                parsed.flags.push((name.to_owned(), Some(value)));
            } else if switches.contains(&name) {
                if inline.is_some() {
                    return Err(ArgError(format!("--{name} takes no value")));
                }
                parsed.flags.push((name.to_owned(), None));
            } else {
                return Err(ArgError(format!("unknown flag `--{name}`")));
            }
        }
        Ok(parsed)
    }

    /// The last value given for `--name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// `--name` parsed, or `default` when absent.
    pub fn parsed<T: FromStr>(&self, name: &str, default: T) -> Result<T, ArgError>
    where
        T::Err: fmt::Display,
    {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ArgError(format!("invalid value `{v}` for --{name}: {e}"))),
        }
    }

    /// `--name` parsed, if given.
    pub fn optional<T: FromStr>(&self, name: &str) -> Result<Option<T>, ArgError>
    where
        T::Err: fmt::Display,
    {
        self.value(name)
            .map(|v| {
                v.parse()
                    .map_err(|e| ArgError(format!("invalid value `{v}` for --{name}: {e}")))
            })
            .transpose()
    }
}

/// Prints a usage error with the usage and returns exit code 2.
pub fn usage_error(command: &str, error: &ArgError, usage: &str) -> ExitCode {
    eprintln!("tether {command}: {error}\n\n{usage}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_switches_and_help() {
        let args = Args::parse(
            &strings(&["--events", "5", "--faults=heavy", "--stdin-eof", "-h"]),
            &["events", "faults"],
            &["stdin-eof"],
        )
        .unwrap();
        assert_eq!(args.parsed("events", 0u64), Ok(5));
        assert_eq!(args.value("faults"), Some("heavy"));
        assert!(args.switch("stdin-eof"));
        assert!(args.help);
        assert_eq!(args.parsed("seed", 9u64), Ok(9));
    }

    #[test]
    fn errors_name_the_flag() {
        let err = |a: &[&str]| Args::parse(&strings(a), &["events"], &["x"]).unwrap_err().0;
        assert_eq!(err(&["--nope"]), "unknown flag `--nope`");
        assert_eq!(err(&["--events"]), "--events needs a value");
        assert_eq!(err(&["stray"]), "unexpected argument `stray`");
        assert_eq!(err(&["--x=1"]), "--x takes no value");
        let args = Args::parse(&strings(&["--events", "many"]), &["events"], &[]).unwrap();
        assert!(args
            .parsed("events", 0u64)
            .unwrap_err()
            .0
            .contains("--events"));
    }
}
