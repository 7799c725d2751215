//! Cross-core plumbing: one channel into each worker, and the write-queue gauges that
//! make backpressure work across cores.
//!
//! The channels are unbounded so that two workers sending to each other can never
//! deadlock; memory stays bounded because every reader checks the gauge of the
//! connection its frame is feeding before it reads more (see `conn.rs`): a gauge is the
//! number of bytes queued on one connection, readable from any core, and each core has
//! an event that its writers notify when their queues drain.

use std::sync::atomic::{AtomicUsize, Ordering};

use event_listener::Event;

use super::Control;
use crate::relay::MeshMsg;

/// What travels into a worker.
#[derive(Debug)]
pub enum Envelope {
    Mesh(MeshMsg),
    Control(Control),
}

pub type MeshSender = async_channel::Sender<Envelope>;
pub type MeshReceiver = async_channel::Receiver<Envelope>;

/// One channel per worker: every worker gets all senders.
pub fn channels(workers: usize) -> (Vec<MeshSender>, Vec<MeshReceiver>) {
    (0..workers).map(|_| async_channel::unbounded()).unzip()
}

/// Queued bytes per connection slot, per core, and a drain event per core.
pub struct Gauges {
    queued: Vec<Box<[AtomicUsize]>>,
    drained: Vec<Event>,
}

impl Gauges {
    pub fn new(workers: usize, slots: usize) -> Gauges {
        Gauges {
            queued: (0..workers)
                .map(|_| (0..slots).map(|_| AtomicUsize::new(0)).collect())
                .collect(),
            drained: (0..workers).map(|_| Event::new()).collect(),
        }
    }

    /// Slots per core.
    pub fn capacity(&self) -> usize {
        self.queued.first().map_or(0, |q| q.len())
    }

    /// Bytes queued on `(core, slot)`; 0 for a slot out of range.
    pub fn get(&self, core: u16, slot: u32) -> usize {
        self.queued
            .get(usize::from(core))
            .and_then(|q| q.get(slot as usize))
            .map_or(0, |g| g.load(Ordering::Acquire))
    }

    pub fn add(&self, core: u16, slot: u32, n: usize) {
        if let Some(g) = self.slot(core, slot) {
            g.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// Removes `n` bytes and wakes readers waiting on this core's queues.
    pub fn sub(&self, core: u16, slot: u32, n: usize) {
        if let Some(g) = self.slot(core, slot) {
            g.fetch_sub(n, Ordering::AcqRel);
        }
        self.notify(core);
    }

    /// Sets a slot's gauge to zero (its connection is gone).
    pub fn reset(&self, core: u16, slot: u32) {
        if let Some(g) = self.slot(core, slot) {
            g.store(0, Ordering::Release);
        }
        self.notify(core);
    }

    fn notify(&self, core: u16) {
        if let Some(e) = self.drained.get(usize::from(core)) {
            e.notify(usize::MAX);
        }
    }

    fn slot(&self, core: u16, slot: u32) -> Option<&AtomicUsize> {
        self.queued.get(usize::from(core))?.get(slot as usize)
    }

    /// Waits until `(core, slot)` holds less than `high` bytes.
    pub async fn wait_below(&self, core: u16, slot: u32, high: usize) {
        loop {
            if self.get(core, slot) < high {
                return;
            }
            let Some(ev) = self.drained.get(usize::from(core)) else {
                return;
            };
            let listener = ev.listen();
            if self.get(core, slot) < high {
                return;
            }
            listener.await;
        }
    }
}
