//! `tether serve`: the reference server on its own.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::thread;

use tether_server::{FaultPlan, Server, ServerConfig};

use crate::args::{usage_error, ArgError, Args};

pub const USAGE: &str = "\
tether serve: run the reference server of the wire protocol

USAGE:
    tether serve [--addr ADDR] [--faults PLAN] [--seed S] [--stdin-eof]

OPTIONS:
    --addr ADDR      where to listen [default: 127.0.0.1:8787]
    --faults PLAN    none | light | heavy, optionally with overrides, e.g.
                     `heavy,hang-ms=1500` or `none,5xx=0.1` [default: none]
    --seed S         the fault plan's seed (overrides a seed= in PLAN)
    --stdin-eof      stop (gracefully) at end of standard input; without it the server runs
                     until interrupted (Ctrl-C)
    -h, --help       print this help

Logs one line per request to stderr (never headers, so never a token).
";

pub fn run(args: &[String]) -> ExitCode {
    let parsed = match Args::parse(args, &["addr", "faults", "seed"], &["stdin-eof"]) {
        Ok(p) => p,
        Err(e) => return usage_error("serve", &e, USAGE),
    };
    if parsed.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let setup = || -> Result<(SocketAddr, FaultPlan), ArgError> {
        let addr: SocketAddr = parsed.parsed("addr", SocketAddr::from(([127, 0, 0, 1], 8787)))?;
        let mut faults: FaultPlan = parsed.parsed("faults", FaultPlan::none())?;
        if let Some(seed) = parsed.optional("seed")? {
            faults = faults.with_seed(seed);
        }
        Ok((addr, faults))
    };
    let (addr, faults) = match setup() {
        Ok(s) => s,
        Err(e) => return usage_error("serve", &e, USAGE),
    };
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
    if parsed.switch("stdin-eof") {
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
