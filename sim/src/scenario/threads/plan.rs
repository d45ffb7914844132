//! What the callers and the server's operator do, and when: drawn up front from the seed.

use std::collections::BTreeMap;

use tether_core::{Instant, Rng};

use super::{ThreadRunConfig, ThreadScenario};
use crate::world::Isolation;

/// The id of the thread the server poisons: no client ever edits it.
pub(super) const POISONED: &str = "poisoned";

/// One caller's edit of a thread, through its handle.
#[derive(Clone, Debug)]
pub(super) enum Edit {
    Add {
        thread: String,
        id: String,
    },
    Title {
        thread: String,
        title: String,
    },
    Update {
        thread: String,
        id: String,
    },
    Delete {
        thread: String,
        id: String,
    },
    /// The thread's whole view put back with one field changed (`put_thread`), if held.
    Put {
        thread: String,
        summary: String,
    },
}

/// Something planned.
#[derive(Clone, Debug)]
pub(super) enum Happening {
    /// Client `.0`'s caller edits.
    Edit(usize, Edit),
    /// Client `.0`'s caller asks to sync a thread now.
    SyncNow(usize, String),
    /// Client `.0` is cut off; its caller also says offline if `says_offline`.
    CutOff {
        client: usize,
        isolation: Isolation,
        says_offline: bool,
    },
    /// Client `.0` is back on the network (and its caller says online if it said offline).
    Rejoin(usize),
    /// Client `.0`'s caller pauses syncing.
    Pause(usize),
    /// Client `.0`'s caller resumes syncing.
    Resume(usize),
    /// The server stores an invalid thread under [`POISONED`].
    Poison,
}

/// The plan: happenings by time, ties in the order they were planned.
pub(super) type Plan = BTreeMap<(Instant, u64), Happening>;

struct Planner {
    plan: Plan,
    seq: u64,
}

impl Planner {
    fn at(&mut self, at: Instant, happening: Happening) {
        self.plan.insert((at, self.seq), happening);
        self.seq += 1;
    }
}

/// Draws `config`'s plan from `rng`.
pub(super) fn plan(config: &ThreadRunConfig, mut rng: Rng) -> Plan {
    let mut p = Planner {
        plan: BTreeMap::new(),
        seq: 0,
    };
    let add = |thread: &str, id: &str| Edit::Add {
        thread: thread.into(),
        id: id.into(),
    };
    match config.scenario {
        ThreadScenario::ConcurrentEdits => {
            for i in 0..2 {
                let id = format!("hello-from-user-{}", i + 1);
                p.at(Instant::ZERO, Happening::Edit(i, add("test-thread", &id)));
            }
        }
        ThreadScenario::Partition => {
            p.at(
                Instant::from_secs(1),
                Happening::Edit(0, add("thread1", "online-message")),
            );
            p.at(
                Instant::from_secs(10),
                Happening::CutOff {
                    client: 0,
                    isolation: Isolation::Refused,
                    says_offline: false,
                },
            );
            p.at(
                Instant::from_secs(20),
                Happening::Edit(0, add("thread1", "offline-message-1")),
            );
            p.at(
                Instant::from_secs(25),
                Happening::Edit(0, add("thread1", "offline-message-2")),
            );
            p.at(Instant::from_secs(120), Happening::Rejoin(0));
        }
        ThreadScenario::Throughput => {
            for n in 0..1_000 {
                let id = format!("message-{n:04}");
                p.at(
                    Instant::from_millis(n),
                    Happening::Edit(0, add("perf-thread", &id)),
                );
            }
        }
        ThreadScenario::Random => random(config, &mut rng, &mut p),
    }
    p.plan
}

fn random(config: &ThreadRunConfig, rng: &mut Rng, p: &mut Planner) {
    let active = config.active.as_micros() as u64;
    let secs = active / 1_000_000;
    for client in 0..config.clients {
        let mut times: Vec<u64> = (0..config.edits_per_client)
            .map(|_| rng.below(active))
            .collect();
        times.sort_unstable();
        // The caller's own messages still there, to edit or delete.
        let mut own: Vec<(String, String)> = Vec::new();
        for (n, at) in times.into_iter().enumerate() {
            let at = Instant::from_micros(at);
            let thread = format!("t{}", rng.below(config.threads as u64));
            let roll = rng.below(100);
            let happening = if roll < 8 {
                Happening::Edit(
                    client,
                    Edit::Title {
                        thread,
                        title: format!("title-{client}-{n}"),
                    },
                )
            } else if roll < 14 && !own.is_empty() {
                let (thread, id) = own[rng.below(own.len() as u64) as usize].clone();
                Happening::Edit(client, Edit::Update { thread, id })
            } else if roll < 18 && !own.is_empty() {
                let (thread, id) = own.swap_remove(rng.below(own.len() as u64) as usize);
                Happening::Edit(client, Edit::Delete { thread, id })
            } else if roll < 21 {
                Happening::SyncNow(client, thread)
            } else if roll < 24 {
                let summary = format!("summary-{client}-{n}");
                Happening::Edit(client, Edit::Put { thread, summary })
            } else {
                let id = format!("c{client}-m{n}");
                own.push((thread.clone(), id.clone()));
                Happening::Edit(client, Edit::Add { thread, id })
            };
            p.at(at, happening);
        }
    }
    // Cut-offs of minutes: each client with probability 1/2, at most all but one.
    for client in 0..config.clients.saturating_sub(1) {
        if rng.below(2) == 0 {
            let len = 60 + rng.below(180);
            let start = rng.below(secs.saturating_sub(len).max(1));
            let isolation = if rng.below(2) == 0 {
                Isolation::Refused
            } else {
                Isolation::Silent
            };
            let says_offline = rng.below(2) == 0;
            p.at(
                Instant::from_secs(start),
                Happening::CutOff {
                    client,
                    isolation,
                    says_offline,
                },
            );
            p.at(Instant::from_secs(start + len), Happening::Rejoin(client));
        }
    }
    // Pauses of seconds to a minute: each client with probability 1/4.
    for client in 0..config.clients {
        if rng.below(4) == 0 {
            let len = 10 + rng.below(50);
            let start = rng.below(secs.saturating_sub(len).max(1));
            p.at(Instant::from_secs(start), Happening::Pause(client));
            p.at(Instant::from_secs(start + len), Happening::Resume(client));
        }
    }
    // A poisoned thread in a third of the runs.
    if rng.below(3) == 0 {
        let at = Instant::from_micros(rng.below(active));
        p.at(at, Happening::Poison);
    }
}
