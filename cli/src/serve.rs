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
    after_help = "Logs one line per request to stderr (never headers, so never a token)."
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
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let (addr, mut faults) = (args.addr, args.faults.clone());
    if let Some(seed) = args.seed {
        faults = faults.with_seed(seed);
    }
    let config = ServerConfig::default()
        .with_bind_addr(addr)
        .with_faults(faults)
        .log_to_stderr();
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tether serve: {e}");
            return ExitCode::from(1);
        }
    };
    println!("listening on {}", server.base_url());
    println!("a session URL: {}", server.session_url("demo"));
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
