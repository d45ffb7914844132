//! `tether demo --sync`: three clients in one process share the threads of one session of an
//! in-process server (docs/PROTOCOL.md §Thread sync), edit them concurrently — one of them offline
//! for the first half — and the run checks that they converge.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use serde_json::json;
use tether_blocking::{
    Message, SyncStatus, Thread, ThreadCloseReport, ThreadHandle, ThreadReport, ThreadSyncConfig,
};
use tether_server::{Server, ServerConfig};

use crate::args::Runtime;
use crate::session::Builder;

const SESSION: &str = "demo-sync";
const CLIENTS: usize = 3;
const THREADS: usize = 4;
/// The client that starts offline and comes back online halfway.
const OFFLINE: usize = CLIENTS - 1;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the sync demo is run with.
pub struct SyncOptions {
    pub messages: u64,
    pub faults: tether_server::FaultPlan,
    pub seed: u64,
    pub runtime: Runtime,
}

/// What one client did.
#[derive(Default)]
struct Edits {
    /// Message id → its final content.
    added: BTreeMap<String, String>,
    updated: u64,
    refused: u64,
}

/// Client `client`'s edits: `messages` messages round-robin over the threads, every tenth
/// one rewritten later, a title now and then, and a malformed message refused at the call.
fn edit(client: usize, threads: &ThreadHandle, messages: u64) -> Result<Edits, String> {
    let mut edits = Edits::default();
    for k in 0..messages {
        let thread = format!("t{}", k as usize % THREADS);
        let id = format!("c{client}-m{k}");
        let content = format!("message {k} of client {client}");
        let at = k * CLIENTS as u64 + client as u64;
        threads
            .add_message(&thread, Message::new(&id, "user", &content, at))
            .map_err(|e| format!("client {client}: add {id}: {e}"))?;
        edits.added.insert(id, content);
        if k % 10 == 9 {
            let old = k - 5;
            let (thread, id) = (
                format!("t{}", old as usize % THREADS),
                format!("c{client}-m{old}"),
            );
            let content = format!("message {old} of client {client}, edited");
            let at = old * CLIENTS as u64 + client as u64;
            threads
                .update_message(&thread, Message::new(&id, "user", &content, at))
                .map_err(|e| format!("client {client}: update {id}: {e}"))?;
            edits.added.insert(id, content);
            edits.updated += 1;
            threads
                .set_field(
                    &thread,
                    "title",
                    Some(json!(format!("set by {client} at {k}"))),
                )
                .map_err(|e| format!("client {client}: title: {e}"))?;
            thread::sleep(Duration::from_millis(5));
        }
        if k == messages / 2 && client == OFFLINE {
            threads.set_online(true);
        }
    }
    if threads
        .add_message_json("t0", &json!({"id": "", "role": "user"}))
        .is_err()
    {
        edits.refused += 1;
    }
    Ok(edits)
}

pub fn demo(options: &SyncOptions) -> Result<bool, Box<dyn std::error::Error>> {
    let started = crate::demo::wall_clock_now();
    let server = Server::start(ServerConfig::default().with_faults(options.faults.clone()))?;
    let url = server.session_url(SESSION);
    let runtime = match options.runtime {
        Runtime::Blocking => "tether-blocking",
        Runtime::Smol => "tether-smol",
        Runtime::Tokio => "tether-tokio",
    };
    eprintln!(
        "tether demo --sync: {CLIENTS} clients x {} messages over {THREADS} threads against {url} \
         on {runtime} (session faults {:.0}%, seed {})",
        options.messages,
        options.faults.mix.total() * 100.0,
        options.seed
    );
    let mut workers = Vec::new();
    let mut syncs = Vec::new();
    for client in 0..CLIENTS {
        let worker = Builder::new(options.runtime, &url)
            .epoch(Some(1))
            .seed(options.seed.wrapping_add(client as u64))
            .config(crate::demo::session_config_for(SESSION))
            .start()?;
        let threads = worker.threads(ThreadSyncConfig::new(format!("client-{client}")))?;
        workers.push(worker);
        syncs.push(threads);
    }
    let reports = syncs[OFFLINE].reports();
    syncs[OFFLINE].set_online(false);
    let edits = thread::scope(|scope| {
        let handles: Vec<_> = syncs
            .iter()
            .enumerate()
            .map(|(i, t)| scope.spawn(move || edit(i, t, options.messages)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an editing thread panicked".into()))
            })
            .collect::<Result<Vec<Edits>, String>>()
    })?;
    // Two rounds: after the first every edit is on the server, the second pulls it all.
    let mut flushed = true;
    for _ in 0..2 {
        for (i, t) in syncs.iter().enumerate() {
            if let Err(e) = t.flush(FLUSH_TIMEOUT).wait() {
                eprintln!("tether demo --sync: client {i}: flush: {e}");
                flushed = false;
            }
        }
    }
    let views: Vec<Vec<Thread>> = syncs.iter().map(|t| t.threads()).collect();
    let statuses: Vec<BTreeMap<String, SyncStatus>> =
        syncs.iter().map(|t| t.sync_statuses()).collect();
    for worker in workers {
        drop(worker.close(Duration::from_secs(10)).wait());
    }
    let closes: Vec<ThreadCloseReport> = syncs
        .iter()
        .map(|t| t.close(Duration::ZERO).wait())
        .collect();
    let seen: Vec<ThreadReport> = std::iter::from_fn(|| reports.try_next())
        .collect::<Result<_, _>>()
        .map_err(|lagged| format!("the thread reports: {lagged}"))?;
    let stored = server.inspector().threads(SESSION);
    server.shutdown()?;
    let elapsed = started.elapsed();
    Ok(check(&Outcome {
        stored,
        views,
        statuses,
        closes,
        edits,
        seen,
        flushed,
        elapsed,
    }))
}

struct Outcome {
    stored: Vec<Thread>,
    views: Vec<Vec<Thread>>,
    statuses: Vec<BTreeMap<String, SyncStatus>>,
    closes: Vec<ThreadCloseReport>,
    edits: Vec<Edits>,
    seen: Vec<ThreadReport>,
    flushed: bool,
    elapsed: Duration,
}

fn check(o: &Outcome) -> bool {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut content: BTreeMap<&str, &str> = BTreeMap::new();
    for thread in &o.stored {
        for m in &thread.messages {
            *count.entry(&m.id).or_default() += 1;
            content.insert(&m.id, &m.content);
        }
    }
    let added: BTreeMap<&str, &str> = o
        .edits
        .iter()
        .flat_map(|e| e.added.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let missing = added.keys().filter(|id| !count.contains_key(*id)).count();
    let repeated = count.values().filter(|n| **n > 1).count();
    let unknown = count.keys().filter(|id| !added.contains_key(*id)).count();
    let stale = added
        .iter()
        .filter(|(id, c)| content.get(*id).is_some_and(|s| s != *c))
        .count();
    let converged = o.views.iter().filter(|v| **v == o.stored).count();
    let synced = o
        .statuses
        .iter()
        .filter(|s| s.len() == THREADS && s.values().all(|s| *s == SyncStatus::Synced))
        .count();
    let clean = o.closes.iter().filter(|c| c.all_synced()).count();
    let count_of = |f: fn(&ThreadReport) -> bool| o.seen.iter().filter(|r| f(r)).count();
    let offline = count_of(|r| matches!(r, ThreadReport::Offline(_)));
    let online = count_of(|r| matches!(r, ThreadReport::Online));
    let total: usize = o.stored.iter().map(|t| t.messages.len()).sum();
    println!(
        "messages added        {} ({} per client), {} rewritten, {} malformed refused at the call",
        added.len(),
        o.edits.first().map_or(0, |e| e.added.len()),
        o.edits.iter().map(|e| e.updated).sum::<u64>(),
        o.edits.iter().map(|e| e.refused).sum::<u64>()
    );
    println!(
        "server threads        {} holding {total} messages",
        o.stored.len()
    );
    println!("messages missing      {missing}");
    println!("messages repeated     {repeated} (plus {unknown} never added)");
    println!("rewrites lost         {stale}");
    println!("clients converged     {converged} of {CLIENTS} hold exactly the server's threads");
    println!("statuses synced       {synced} of {CLIENTS} clients, every thread");
    println!("closed all synced     {clean} of {CLIENTS}");
    println!("offline spell         client {OFFLINE}: {offline} offline, {online} online again");
    println!("elapsed               {:.2} s", o.elapsed.as_secs_f64());
    let ok = o.flushed
        && o.stored.len() == THREADS
        && missing == 0
        && repeated == 0
        && unknown == 0
        && stale == 0
        && total == added.len()
        && converged == CLIENTS
        && synced == CLIENTS
        && clean == CLIENTS
        && o.edits.iter().all(|e| e.refused == 1)
        && offline >= 1
        && online >= 1;
    println!("{}", if ok { "OK" } else { "FAILED" });
    ok
}
