//! A session on tokio with `tracing-subscriber` printing tether's spans and events, against an
//! in-process `tether-server` with light faults; then the per-endpoint latency summary and any
//! slow requests from the report stream.
//!
//! ```text
//! cargo run -p tether-benches --features examples --example tracing_session            # info and above
//! TETHER_TRACE=debug cargo run -p tether-benches --features examples --example tracing_session   # + requests
//! ```
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use serde_json::json;
use tether_server::{FaultPlan, Server, ServerConfig};
use tether_tokio::Report;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = match std::env::var("TETHER_TRACE").as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();

    let faults: FaultPlan = "light,seed=3".parse()?;
    let server = Server::start(ServerConfig::default().with_faults(faults))?;
    let url = server.session_url("traced");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tether = tether_smol::builder(&url).token("never-logged").start()?;
        let mut reports = tether.reports();
        for i in 0..2_000 {
            tether
                .send_event(json!({"seq": i}), Duration::from_secs(10))
                .await?;
            if i % 100 == 0 {
                tether.patch_state(json!({"worker_status": format!("step-{i}")}))?;
            }
        }
        tether.flush(Duration::from_secs(60)).await?;
        let report = tether.close(Duration::from_secs(10)).await;
        println!(
            "closed: {}, all delivered: {}",
            report.status,
            report.all_delivered()
        );
        while let Some(r) = reports.next().await {
            match r? {
                Report::SlowRequest {
                    endpoint,
                    latency,
                    recent_p95,
                } => println!("slow {endpoint}: {latency:?} (recent p95 {recent_p95:?})"),
                Report::LatencySummary(endpoints) => {
                    for e in endpoints {
                        println!(
                            "{:<28} n={:<5} p50={:?} p95={:?} p99={:?} max={:?}",
                            e.endpoint.to_string(),
                            e.count,
                            e.p50,
                            e.p95,
                            e.p99,
                            e.max
                        );
                    }
                }
                _ => {}
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    server.shutdown()?;
    Ok(())
}
