//! The audit accumulator: a sans-IO state machine that turns what the attestor's I/O
//! shell observes while reading sampled blocks from a hoster into a [`MetricSummary`].
//!
//! It never reads a clock: every input carries the caller's `now`. Latency, time to
//! first byte and per-request throughput go into HDR histograms (microseconds or bytes
//! per second, 3 significant digits, bounded maxima, saturating); failures are split
//! into *lacks data* and *misbehaved* and the first [`MAX_FAILURES`] are listed for the
//! report. Three clocks bound the audit: a progress timeout (a stalled hoster), a hard
//! maximum duration (a hoster trickling one byte just often enough), and a per-request
//! timeout.
//!
//! The accumulator only measures; [`session::AuditSession`] wraps it with the decisions
//! of a whole audit (what to request, when to end, how to judge receipts).
//!
//! Files: this one holds the accumulator; `config` its validated limits; `session` the
//! audit session.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::metrics::{Failure, FailureKind, MetricSummary, Outcome};
use crate::time::Instant;

mod config;
pub mod session;
#[cfg(test)]
mod tests;

pub use config::{AuditConfig, ConfigError};
pub use session::{
    AuditOutput, AuditSession, BlockAnswer, DataAnswer, END_GRACE, HashAnswer, MAX_SAMPLE, Request,
    SessionTarget, Transmit, UpgradeAnswer,
};

/// The longest audit [`AuditConfig`] accepts, and the largest latency the histograms
/// record exactly (longer values saturate).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Requests in flight at once; further `request_sent` calls are ignored.
pub const MAX_IN_FLIGHT: usize = 1024;
/// Failures listed in [`Audit::failures`]; later ones are only counted.
pub const MAX_FAILURES: usize = 64;
/// Queued events; beyond this, [`AuditEvent::Timeout`]s are dropped (counts stay exact).
pub const MAX_EVENTS: usize = 4096;
/// The largest per-request throughput the histogram records exactly (≈ 1.1 TB/s).
const MAX_THROUGHPUT_BPS: u64 = 1 << 40;
const SIGFIG: u8 = 3;

/// How the hoster's response to one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockResult {
    /// The block arrived and verified; `bytes` is its size.
    Ok {
        /// Block size in bytes.
        bytes: u64,
    },
    /// The hoster said it lacks the block, or answered without data.
    LacksData,
    /// The hoster sent something provably wrong.
    Misbehaved(Misbehavior),
}

/// What a misbehaving hoster did (each is evidence for a fraud proof).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehavior {
    /// The merkle proof did not verify against the signed root.
    BadProof,
    /// The data did not match its proven hash.
    BadData,
    /// A signed receipt contradicts what was served.
    BadReceipt,
}

impl Misbehavior {
    /// The failure as listed in a report.
    pub fn kind(self) -> FailureKind {
        match self {
            Misbehavior::BadProof => FailureKind::BadProof,
            Misbehavior::BadData => FailureKind::BadData,
            Misbehavior::BadReceipt => FailureKind::BadReceipt,
        }
    }
}

/// What the shell must act on, from [`Audit::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// A request passed its deadline: cancel it; it is counted as a timeout.
    Timeout {
        /// The shell's id for the request.
        req_id: u64,
        /// The requested block.
        block_index: u64,
    },
    /// The audit is over (emitted once): close the connection and call
    /// [`Audit::finish`].
    Stopped(Outcome),
}

#[derive(Clone, Copy, Debug)]
enum State {
    Connecting,
    Running,
    Stopped(Outcome),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    block_index: u64,
    sent: Instant,
    first_byte: Option<Instant>,
    /// Send order, to time requests out deterministically when deadlines tie.
    seq: u64,
}

/// One attestor's audit of one hoster.
///
/// # Call order
/// 1. [`Audit::new`] when the attestor starts dialling; then [`Audit::connected`] or
///    [`Audit::connect_failed`].
/// 2. Per request: [`Audit::request_sent`], then any number of [`Audit::first_byte`] /
///    [`Audit::bytes`], then one [`Audit::block_done`].
/// 3. Throughout: arm a timer for [`Audit::poll_timeout`], call
///    [`Audit::handle_timeout`] when it fires, and drain [`Audit::poll_event`] after
///    every input.
/// 4. [`Audit::finish`] when the sample is done or after [`AuditEvent::Stopped`].
///
/// # Robustness rules
/// - Every input first processes the deadlines due by its `now`, as if
///   `handle_timeout(now)` had been called: a block completing at or after its deadline
///   counts as a timeout, and an input at or after the hard maximum finds the audit
///   stopped. A deadline fires at its own instant, not at the (possibly late) `now`.
/// - Time going backwards: a `now` earlier than one already seen is taken as the latest
///   time seen. All durations use saturating arithmetic.
/// - Once stopped, every input is ignored silently. While live, inputs that make no
///   sense (unknown or duplicate request id, completion of a finished request, a
///   request before `connected`, more than [`MAX_IN_FLIGHT`] in flight, a second
///   `connected`) are ignored and counted in [`Audit::ignored_inputs`].
/// - *Progress* is a first byte, a non-empty `bytes`, or a `block_done` for a request
///   in flight. The progress deadline is armed only while at least one request is in
///   flight, counted from the last progress or from the send that ended an idle
///   period; while connecting it is counted from `new` and ends in `ConnectFailed`.
/// - Requests still in flight when the audit stops or finishes count as timeouts.
/// - `connect_failed` after `connected` means the connection was lost: the audit stops
///   with [`Outcome::ConnectFailed`].
pub struct Audit {
    cfg: AuditConfig,
    start: Instant,
    /// The latest time seen.
    now: Instant,
    state: State,
    connect_time_us: u64,
    pending: HashMap<u64, Pending>,
    next_seq: u64,
    last_progress: Instant,
    busy_since: Instant,
    active_us: u64,
    requests: u32,
    ok_blocks: u32,
    lacks_data: u32,
    misbehaved: u32,
    timeouts: u32,
    bytes_ok: u64,
    latency: Histogram<u64>,
    ttfb: Histogram<u64>,
    throughput: Histogram<u64>,
    failures: Vec<Failure>,
    ignored: u64,
    events: VecDeque<AuditEvent>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("cfg", &self.cfg)
            .field("start", &self.start)
            .field("now", &self.now)
            .field("state", &self.state)
            .field("in_flight", &self.pending.len())
            .field("requests", &self.requests)
            .field("ok_blocks", &self.ok_blocks)
            .field("lacks_data", &self.lacks_data)
            .field("misbehaved", &self.misbehaved)
            .field("timeouts", &self.timeouts)
            .field("ignored", &self.ignored)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn histogram(max: u64) -> Histogram<u64> {
    Histogram::new_with_bounds(1, max, SIGFIG)
        .expect("constant bounds are valid: 1 < max, 3 sigfig")
}

impl Audit {
    /// Start an audit at `now` (when dialling begins; connection time counts from here).
    pub fn new(cfg: AuditConfig, now: Instant) -> Self {
        Audit {
            cfg,
            start: now,
            now,
            state: State::Connecting,
            connect_time_us: 0,
            pending: HashMap::new(),
            next_seq: 0,
            last_progress: now,
            busy_since: now,
            active_us: 0,
            requests: 0,
            ok_blocks: 0,
            lacks_data: 0,
            misbehaved: 0,
            timeouts: 0,
            bytes_ok: 0,
            latency: histogram(micros(MAX_DURATION)),
            ttfb: histogram(micros(MAX_DURATION)),
            throughput: histogram(MAX_THROUGHPUT_BPS),
            failures: Vec::new(),
            ignored: 0,
            events: VecDeque::new(),
        }
    }

    /// The connection to the hoster is ready.
    pub fn connected(&mut self, now: Instant) {
        let now = self.advance(now);
        match self.state {
            State::Connecting => {
                self.state = State::Running;
                self.connect_time_us = micros(now.saturating_since(self.start));
                self.last_progress = now;
            }
            State::Running => self.ignored += 1,
            State::Stopped(_) => {}
        }
    }

    /// The connection could not be made, or was lost: the audit stops.
    pub fn connect_failed(&mut self, now: Instant) {
        let now = self.advance(now);
        if !self.is_stopped() {
            self.stop(now, Outcome::ConnectFailed);
        }
    }

    /// Request `req_id` (the shell's id, unique among requests in flight) for block
    /// `block_index` was sent.
    pub fn request_sent(&mut self, now: Instant, req_id: u64, block_index: u64) {
        let now = self.advance(now);
        match self.state {
            State::Running => {}
            State::Connecting => {
                self.ignored += 1;
                return;
            }
            State::Stopped(_) => return,
        }
        if self.pending.contains_key(&req_id)
            || self.pending.len() >= MAX_IN_FLIGHT
            || self.requests == u32::MAX
        {
            self.ignored += 1;
            return;
        }
        if self.pending.is_empty() {
            // An idle period ends: the transfer clock and the progress deadline restart.
            self.busy_since = now;
            self.last_progress = now;
        }
        self.pending.insert(
            req_id,
            Pending {
                block_index,
                sent: now,
                first_byte: None,
                seq: self.next_seq,
            },
        );
        self.next_seq += 1;
        self.requests += 1;
    }

    /// The first byte of the response to `req_id` arrived (later calls are progress).
    pub fn first_byte(&mut self, now: Instant, req_id: u64) {
        let now = self.advance(now);
        self.progress(now, req_id);
    }

    /// `n` more bytes of the response to `req_id` arrived. Empty reads are no progress.
    pub fn bytes(&mut self, now: Instant, req_id: u64, n: u64) {
        let now = self.advance(now);
        if n > 0 {
            self.progress(now, req_id);
        }
    }

    /// The response to `req_id` is complete and has been verified (or not).
    pub fn block_done(&mut self, now: Instant, req_id: u64, result: BlockResult) {
        let now = self.advance(now);
        if !matches!(self.state, State::Running) {
            return;
        }
        let Some(p) = self.pending.remove(&req_id) else {
            self.ignored += 1;
            return;
        };
        self.last_progress = now;
        if self.pending.is_empty() {
            self.close_busy(now);
        }
        match result {
            BlockResult::Ok { bytes } => {
                self.ok_blocks += 1;
                self.bytes_ok = self.bytes_ok.saturating_add(bytes);
                let latency = micros(now.saturating_since(p.sent));
                let ttfb = micros(p.first_byte.unwrap_or(now).saturating_since(p.sent));
                self.latency.saturating_record(latency);
                self.ttfb.saturating_record(ttfb);
                self.throughput
                    .saturating_record(per_second(bytes, latency));
            }
            BlockResult::LacksData => {
                self.lacks_data += 1;
                self.fail(p.block_index, FailureKind::LacksData);
            }
            BlockResult::Misbehaved(m) => {
                self.misbehaved += 1;
                self.fail(p.block_index, m.kind());
            }
        }
    }

    /// The earliest deadline, if the audit is live: the hard maximum, the progress
    /// deadline (while connecting or while requests are in flight) and each request's.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_stopped() {
            return None;
        }
        let terminal = self.terminal_deadline().map(|(at, _)| at);
        let request = self.next_request_deadline().map(|(at, _, _)| at);
        match (terminal, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Process every deadline due by `now`; results come out of [`Audit::poll_event`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The next event for the shell, oldest first.
    pub fn poll_event(&mut self) -> Option<AuditEvent> {
        self.events.pop_front()
    }

    /// End the audit at `now` (requests still in flight count as timeouts) and summarise
    /// it. Idempotent: later calls return the same summary.
    ///
    /// An audit that never connected ends as [`Outcome::ConnectFailed`], otherwise as
    /// [`Outcome::Completed`] unless it had already stopped.
    pub fn finish(&mut self, now: Instant) -> MetricSummary {
        let now = self.advance(now);
        match self.state {
            State::Connecting => self.stop(now, Outcome::ConnectFailed),
            State::Running => self.stop(now, Outcome::Completed),
            State::Stopped(_) => {}
        }
        self.summary()
    }

    /// The failures listed so far (the first [`MAX_FAILURES`]), in order of occurrence.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Inputs ignored because they made no sense (see the type's documentation).
    pub fn ignored_inputs(&self) -> u64 {
        self.ignored
    }

    /// How the audit ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.state {
            State::Stopped(o) => Some(o),
            _ => None,
        }
    }

    /// Whether the audit is over.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped(_))
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The limits this audit runs under.
    pub fn config(&self) -> &AuditConfig {
        &self.cfg
    }

    /// The summary of the audit so far (final once stopped).
    pub fn summary(&self) -> MetricSummary {
        let q = |h: &Histogram<u64>, quantile: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(quantile)
            }
        };
        // Quantiles of one histogram are monotone; `max` keeps that explicit.
        let latency_p50_us = q(&self.latency, 0.5);
        let latency_p90_us = q(&self.latency, 0.9).max(latency_p50_us);
        let latency_p99_us = q(&self.latency, 0.99).max(latency_p90_us);
        let latency_max_us = q(&self.latency, 1.0).max(latency_p99_us);
        let ttfb_p50_us = q(&self.ttfb, 0.5);
        let ttfb_p99_us = q(&self.ttfb, 0.99).max(ttfb_p50_us);
        let mut active_us = self.active_us;
        if !self.pending.is_empty() {
            active_us =
                active_us.saturating_add(micros(self.now.saturating_since(self.busy_since)));
        }
        MetricSummary {
            requests: self.requests,
            ok_blocks: self.ok_blocks,
            bytes_received: self.bytes_ok,
            latency_p50_us,
            latency_p90_us,
            latency_p99_us,
            latency_max_us,
            ttfb_p50_us,
            ttfb_p99_us,
            throughput_bps: per_second(self.bytes_ok, active_us),
            throughput_p50_bps: q(&self.throughput, 0.5),
            connect_time_us: self.connect_time_us,
            lacks_data: self.lacks_data,
            misbehaved: self.misbehaved,
            timeouts: self.timeouts,
            outcome: self.outcome().unwrap_or(Outcome::Completed),
        }
    }

    /// Clamp `now` to the latest time seen, then process every deadline due by it.
    fn advance(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        let now = self.now;
        while !self.is_stopped() {
            let terminal = self.terminal_deadline().filter(|(at, _)| *at <= now);
            let request = self.next_request_deadline().filter(|(at, _, _)| *at <= now);
            match (terminal, request) {
                (Some((at, outcome)), r) if r.is_none_or(|(rat, _, _)| at <= rat) => {
                    self.stop(at, outcome);
                }
                (_, Some((at, req_id, _))) => self.time_out(at, req_id),
                _ => break,
            }
        }
        now
    }

    /// The earlier of the hard maximum and the progress deadline, with the outcome it
    /// stops the audit with; a tie goes to the progress deadline (the more specific).
    fn terminal_deadline(&self) -> Option<(Instant, Outcome)> {
        let hard = (self.start + self.cfg.hard_max(), Outcome::HardMaxDuration);
        let progress = match self.state {
            State::Connecting => Some((
                self.start + self.cfg.progress_timeout(),
                Outcome::ConnectFailed,
            )),
            State::Running if !self.pending.is_empty() => Some((
                self.last_progress + self.cfg.progress_timeout(),
                Outcome::ProgressTimeout,
            )),
            State::Running | State::Stopped(_) => None,
        };
        match progress {
            _ if self.is_stopped() => None,
            Some(p) if p.0 <= hard.0 => Some(p),
            _ => Some(hard),
        }
    }

    /// The request that times out first: `(deadline, req_id, seq)`.
    fn next_request_deadline(&self) -> Option<(Instant, u64, u64)> {
        self.pending
            .iter()
            .map(|(id, p)| (p.sent + self.cfg.request_timeout(), *id, p.seq))
            .min_by_key(|(at, _, seq)| (*at, *seq))
    }

    fn progress(&mut self, now: Instant, req_id: u64) {
        if !matches!(self.state, State::Running) {
            return;
        }
        match self.pending.get_mut(&req_id) {
            Some(p) => {
                p.first_byte.get_or_insert(now);
                self.last_progress = now;
            }
            None => self.ignored += 1,
        }
    }

    fn time_out(&mut self, at: Instant, req_id: u64) {
        let Some(p) = self.pending.remove(&req_id) else {
            return;
        };
        self.timeouts += 1;
        self.fail(p.block_index, FailureKind::Timeout);
        if self.events.len() < MAX_EVENTS {
            self.events.push_back(AuditEvent::Timeout {
                req_id,
                block_index: p.block_index,
            });
        }
        if self.pending.is_empty() {
            self.close_busy(at);
        }
    }

    fn stop(&mut self, at: Instant, outcome: Outcome) {
        if !self.pending.is_empty() {
            self.close_busy(at);
        }
        let mut abandoned: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        abandoned.sort_unstable_by_key(|p| p.seq);
        for p in abandoned {
            self.timeouts += 1;
            self.fail(p.block_index, FailureKind::Timeout);
        }
        self.state = State::Stopped(outcome);
        self.events.push_back(AuditEvent::Stopped(outcome));
    }

    fn close_busy(&mut self, at: Instant) {
        self.active_us = self
            .active_us
            .saturating_add(micros(at.saturating_since(self.busy_since)));
    }

    fn fail(&mut self, block_index: u64, kind: FailureKind) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(Failure { block_index, kind });
        }
    }
}

/// `bytes` per second over `us` microseconds (at least 1), saturating; 0 for no bytes.
fn per_second(bytes: u64, us: u64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    let bps = u128::from(bytes) * 1_000_000 / u128::from(us.max(1));
    u64::try_from(bps).unwrap_or(u64::MAX)
}
