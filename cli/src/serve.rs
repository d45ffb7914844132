//! `tether serve`: the reference server on its own.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use tether_server::{FaultPlan, Server, ServerConfig};

use crate::args::help_template;

/// `tether serve` arguments.
#[derive(Debug, clap::Args)]
#[command(
    help_template = help_template!("serve"),
    after_help = "Logs one line per request to stderr (never headers, so never a token; none with \
                  --quiet), and one per change made from the inspector page.\n\n\
                  The inspector page is at http://ADDR/. Bound to a loopback address it needs no \
                  token; bound to any other address it is off unless a token is set with \
                  --inspect-token or the TETHER_INSPECT_TOKEN environment variable (then open \
                  http://ADDR/?token=TOKEN)."
)]
pub struct ServeArgs {
    /// where to listen
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// none | light | heavy, optionally with overrides, e.g. `heavy,hang-ms=1500` or
    /// `none,5xx=0.1`
    #[arg(long, value_name = "PLAN", default_value = "none")]
    faults: FaultPlan,
    /// the fault plan's seed (overrides a seed= in PLAN)
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// stop (gracefully) at end of standard input; without it the server runs until
    /// interrupted (Ctrl-C)
    #[arg(long)]
    stdin_eof: bool,
    /// the token the inspector page and its API require (default: the TETHER_INSPECT_TOKEN
    /// environment variable); needed to turn the page on when ADDR is not a loopback address
    #[arg(long, value_name = "TOKEN")]
    inspect_token: Option<String>,
    /// log no line per request (changes made from the inspector page are still logged)
    #[arg(long)]
    quiet: bool,
    /// worker threads of the server's runtime
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
}

/// The environment variable that can hold the inspect token (kept out of `ps` listings).
pub const INSPECT_TOKEN_ENV: &str = "TETHER_INSPECT_TOKEN";

/// The inspect token: the flag, else the environment variable; an empty one is none.
fn inspect_token(args: &ServeArgs) -> Option<String> {
    args.inspect_token
        .clone()
        .or_else(|| std::env::var(INSPECT_TOKEN_ENV).ok())
        .filter(|t| !t.is_empty())
}

/// Prints where the inspector page is, or why it is off. Never prints the token.
pub fn print_inspector(server: &Server, token: bool) {
    if token {
        println!(
            "inspector: {}?token=<the inspect token>",
            server.inspector_url()
        );
    } else if server.addr().ip().is_loopback() {
        println!("inspector: {}", server.inspector_url());
    } else {
        println!(
            "inspector: off (listening on {}, not a loopback address; set --inspect-token or \
             {INSPECT_TOKEN_ENV} to turn it on)",
            server.addr().ip()
        );
    }
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let (addr, mut faults) = (args.addr, args.faults.clone());
    if let Some(seed) = args.seed {
        faults = faults.with_seed(seed);
    }
    let token = inspect_token(args);
    let mut config = ServerConfig::default()
        .with_bind_addr(addr)
        .with_faults(faults)
        .log_to_stderr();
    config.worker_threads = usize::from(args.threads);
    if args.quiet {
        config.on_request = None;
    }
    if let Some(token) = &token {
        config = config.with_inspect_token(token.clone());
    }
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tether serve: {e}");
            return ExitCode::from(1);
        }
    };
    println!("listening on {}", server.base_url());
    println!("a session URL: {}", server.session_url("demo"));
    print_inspector(&server, token.is_some());
    if args.stdin_eof {
        println!("stops at end of standard input");
        let mut sink = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut sink);
        return match server.shutdown() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tether serve: {e}");
                ExitCode::from(1)
            }
        };
    }
    println!("press Ctrl-C to stop");
    loop {
        thread::park();
    }
}
