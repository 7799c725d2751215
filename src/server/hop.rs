//! The hop-latency histogram of one worker: frame in to frame written. For one read in
//! [`SAMPLE_EVERY`] (or, when that read queues nothing, the next read that does), the
//! first frame (or piece of one) its actions queue is marked with the instant the read
//! completed; when the `writev` that hands that frame's last byte to the kernel completes,
//! on whichever core owns the outgoing connection, the time since is recorded there. A
//! frame handed to another core carries the mark in an
//! [`Envelope::HopMark`](super::mesh::Envelope::HopMark) sent just before it. The frame
//! counts as written once every byte queued on the connection before it is out too, so a
//! response that jumped the queue (fair sending) is measured as an upper bound. Plain
//! cells owned by the worker, no atomics: the control thread gets a copy with a `Stats`
//! query at scrape time.

use std::cell::Cell;
use std::time::Duration;

/// One read in this many is sampled.
pub const SAMPLE_EVERY: u32 = 16;

/// Upper bounds of the buckets in microseconds (powers of two, 1 µs to about 1 s).
pub const BOUNDS_US: [u64; 21] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072,
    262144, 524288, 1048576,
];

/// A copy of a histogram: counts per bucket (not cumulative; the last one is over the
/// highest bound), the sum and the count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HopSnapshot {
    pub buckets: Vec<u64>,
    pub sum_ns: u64,
    pub count: u64,
}

impl HopSnapshot {
    /// `(upper bound in seconds, count in that bucket alone)` for each bound: what
    /// `prometheus_client`'s encoder takes, which makes them cumulative itself (the `+Inf`
    /// bucket is the count).
    pub fn per_bound(&self) -> Vec<(f64, u64)> {
        BOUNDS_US
            .iter()
            .enumerate()
            .map(|(i, &b)| (b as f64 / 1e6, self.buckets.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// The worker's histogram.
#[derive(Debug, Default)]
pub struct HopHistogram {
    buckets: Cell<[u64; BOUNDS_US.len() + 1]>,
    sum_ns: Cell<u64>,
    count: Cell<u64>,
    tick: Cell<u32>,
}

impl HopHistogram {
    /// `true` once every [`SAMPLE_EVERY`] calls: this read is sampled.
    #[inline]
    pub fn sample(&self) -> bool {
        let t = self.tick.get().wrapping_add(1);
        self.tick.set(t);
        t % SAMPLE_EVERY == 0
    }

    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        let mut b = self.buckets.get();
        b[i] += 1;
        self.buckets.set(b);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.set(self.sum_ns.get().saturating_add(ns));
        self.count.set(self.count.get() + 1);
    }

    pub fn snapshot(&self) -> HopSnapshot {
        HopSnapshot {
            buckets: self.buckets.get().to_vec(),
            sum_ns: self.sum_ns.get(),
            count: self.count.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_counts() {
        let h = HopHistogram::default();
        h.record(Duration::from_nanos(500));
        h.record(Duration::from_micros(3));
        h.record(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        let c = s.per_bound();
        assert_eq!(c[0], (1e-6, 1));
        assert_eq!(c[1].1, 0);
        assert_eq!(c[2].1, 1, "3 us lands under 4 us");
        assert_eq!(
            c.iter().map(|b| b.1).sum::<u64>(),
            2,
            "5 s is over the last bound"
        );
        assert_eq!((0..SAMPLE_EVERY).filter(|_| h.sample()).count(), 1);
    }
}
