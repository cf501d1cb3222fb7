//! The simulated network: a priority queue of in-flight messages over virtual time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use datdot_protocol::time::Instant;
use rand::Rng;
use rand_chacha::ChaCha20Rng;

/// Faults the network injects. All randomness comes from the run's seeded RNG.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Smallest one-way delay.
    pub min_delay: Duration,
    /// Largest one-way delay; each message draws uniformly in between, so messages
    /// overtake each other (reordering).
    pub max_delay: Duration,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Partitions: during `[from, until)` messages between the two sides are lost.
    pub partitions: Vec<Partition>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(40),
            loss: 0.0,
            duplicate: 0.0,
            partitions: Vec::new(),
        }
    }
}

impl NetConfig {
    /// Whether every message between connected nodes eventually arrives (no loss, no
    /// partition): the condition under which liveness properties are checked.
    pub fn reliable(&self) -> bool {
        self.loss == 0.0 && self.partitions.is_empty()
    }
}

/// A network partition: nodes with `side[i] == true` cannot talk to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Start.
    pub from: Instant,
    /// End (healed).
    pub until: Instant,
    /// Which side each node is on.
    pub side: Vec<bool>,
}

#[derive(Debug)]
struct InFlight<M> {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    msg: M,
}

// Min-heap on (delivery time, send order): ties keep send order, so runs are deterministic.
impl<M> PartialEq for InFlight<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<M> Eq for InFlight<M> {}
impl<M> PartialOrd for InFlight<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<M> Ord for InFlight<M> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        Reverse((self.at, self.seq)).cmp(&Reverse((o.at, o.seq)))
    }
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages delivered (duplicates count twice).
    pub delivered: u64,
    /// Messages lost to random loss.
    pub lost: u64,
    /// Messages lost to a partition.
    pub partitioned: u64,
}

/// In-flight messages of type `M`.
#[derive(Debug)]
pub struct Network<M> {
    cfg: NetConfig,
    queue: BinaryHeap<InFlight<M>>,
    seq: u64,
    /// Counters.
    pub stats: NetStats,
}

impl<M: Clone> Network<M> {
    /// An empty network.
    pub fn new(cfg: NetConfig) -> Self {
        Network {
            cfg,
            queue: BinaryHeap::new(),
            seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Send `msg` from `from` to `to` at `now`.
    pub fn send(&mut self, rng: &mut ChaCha20Rng, now: Instant, from: usize, to: usize, msg: M) {
        self.stats.sent += 1;
        if self.cfg.loss > 0.0 && rng.gen_bool(self.cfg.loss) {
            self.stats.lost += 1;
            return;
        }
        if self
            .cfg
            .partitions
            .iter()
            .any(|p| now >= p.from && now < p.until && p.side[from] != p.side[to])
        {
            self.stats.partitioned += 1;
            return;
        }
        let copies = if self.cfg.duplicate > 0.0 && rng.gen_bool(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let lo = self.cfg.min_delay.as_micros() as u64;
            let hi = (self.cfg.max_delay.as_micros() as u64).max(lo);
            let d = Duration::from_micros(rng.gen_range(lo..=hi));
            self.seq += 1;
            self.queue.push(InFlight {
                at: now + d,
                seq: self.seq,
                from,
                to,
                msg: msg.clone(),
            });
        }
    }

    /// When the next message arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|m| m.at)
    }

    /// The next message due at or before `now`: `(from, to, msg)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, usize, M)> {
        if self.next_at()? > now {
            return None;
        }
        let m = self.queue.pop()?;
        self.stats.delivered += 1;
        Some((m.from, m.to, m.msg))
    }
}
