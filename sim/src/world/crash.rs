//! A crash: a client's process is killed and a new one starts in its place, on the same
//! durable outbox.

use tether_driver::BuildError;

use super::{ClientSpec, World};

/// What a [crash](World::crash) took with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crashed {
    /// Answers that were on their way to the killed process.
    pub answers: usize,
    /// Store jobs it had started that had not completed (with a
    /// [store latency](World::with_store_latency)): their writes never happened.
    pub store_jobs: usize,
}

impl World {
    /// Kills client `c` as a killed process dies and starts `spec` in its place (same index),
    /// at the world's time.
    ///
    /// The killed process says nothing more and hears nothing more: its answers in flight are
    /// forgotten (the server applied what reached it), its store jobs not yet completed never
    /// happen, and its driver and handle are dropped without a close; nothing it does while
    /// dropped reaches the store (see below). What its store completed stays: a
    /// [`MemoryStore`](tether_driver::MemoryStore) write that returned is durable (the store
    /// models a disk that keeps what it acknowledged, not one that loses a synced write).
    /// The new process opens `spec`'s store and replays what it holds.
    ///
    /// The store's failing state ([`MemoryStore::fail`](tether_driver::MemoryStore::fail)) is
    /// used to keep the dying driver's last writes out, so a store made to fail works again
    /// after a crash. The scenario's callers die too: their pending answers are theirs to drop.
    ///
    /// # Errors
    /// The new process's settings are refused; then nothing happened.
    ///
    /// # Panics
    /// If the scenario keeps a clone of the killed client's handle (its driver would outlive
    /// the crash and write later, on the new process's store).
    pub fn crash(&mut self, c: usize, spec: ClientSpec) -> Result<Crashed, BuildError> {
        // The new process opens the store first; the old one is frozen meanwhile (the world
        // turns nobody while a scenario acts), and its store jobs are only the world's to run.
        let new = self.start_client(c, spec)?;
        let before = (self.answers.len(), self.stores.len());
        self.answers.retain(|_, a| a.client != c);
        self.stores.retain(|_, (client, _)| *client != c);
        let crashed = Crashed {
            answers: before.0 - self.answers.len(),
            store_jobs: before.1 - self.stores.len(),
        };
        self.set_deadline(c, None, false);
        std::mem::replace(&mut self.clients[c], new).kill();
        self.line(format_args!(
            "** crash: client {c} killed, {} answers in flight and {} store jobs lost; a new \
             process starts on its store",
            crashed.answers, crashed.store_jobs
        ));
        Ok(crashed)
    }
}
