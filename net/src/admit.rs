//! Who gets a connection slot: the listener's admission policy as a pure state machine
//! (time passed in as milliseconds; the tokio shell is [`crate::Listener`]).
//!
//! Two budgets, each global and per source address:
//! - **Handshakes** (a socket accepted, Noise not yet done): at most
//!   [`AdmitLimits::handshakes`] at once, [`AdmitLimits::handshakes_per_ip`] from one
//!   address. A new socket over either bound *evicts the oldest* pending handshake (of
//!   its own address first): a loopback handshake takes milliseconds, so an attacker
//!   holding silent sockets only ever holds the newest few, and an honest dialer's
//!   handshake finishes before it is the oldest.
//! - **Sessions** (handshake done): at most [`AdmitLimits::sessions`] at once,
//!   [`AdmitLimits::sessions_per_ip`] from one address. A new session over either bound
//!   evicts the session that did useful work (a channel opened for a feed we serve, a
//!   request answered with data) least recently — of its own address first — provided
//!   that session is past [`AdmitLimits::grace_ms`] without useful work; otherwise the
//!   new session is refused. Readers doing useful work are never evicted for idle ones.
//!
//! Call order: [`Admission::handle_accept`] for each accepted socket (returns its id
//! and the handshake to cancel, if any); then exactly one of
//! [`Admission::handle_established`] (returns the session to cancel, or a refusal) or
//! [`Admission::handle_closed`]; [`Admission::handle_closed`] again when a session
//! ends. Ids of cancelled connections are removed by the call that cancels them; a
//! later `handle_closed` for them is a no-op.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// The admission bounds (part of [`crate::Limits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmitLimits {
    /// Pending handshakes at once (default 64).
    pub handshakes: usize,
    /// Pending handshakes from one address (default 16).
    pub handshakes_per_ip: usize,
    /// Established sessions at once (default 256).
    pub sessions: usize,
    /// Established sessions from one address (default 64).
    pub sessions_per_ip: usize,
    /// A session is evictable once it did no useful work for this long (default 0.5 s).
    pub grace_ms: u64,
}

impl Default for AdmitLimits {
    fn default() -> Self {
        AdmitLimits {
            handshakes: 64,
            handshakes_per_ip: 16,
            sessions: 256,
            sessions_per_ip: 64,
            grace_ms: 500,
        }
    }
}

/// Why a connection was closed by the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Session budget full and every session did useful work within the grace period.
    SessionsBusy,
    /// The connection was cancelled (to make room) while in its handshake.
    Cancelled,
}

#[derive(Debug)]
struct Session {
    ip: IpAddr,
}

/// The admission state. See the module docs.
#[derive(Debug)]
pub struct Admission {
    limits: AdmitLimits,
    next: u64,
    /// Pending handshakes by id (ids grow: the first entry is the oldest).
    pending: BTreeMap<u64, IpAddr>,
    sessions: HashMap<u64, Session>,
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

impl Admission {
    /// An empty admission with these limits (each ≥ 1).
    pub fn new(limits: AdmitLimits) -> Self {
        Admission {
            limits,
            next: 0,
            pending: BTreeMap::new(),
            sessions: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Pending handshakes and established sessions now.
    pub fn counts(&self) -> (usize, usize) {
        (self.pending.len(), self.sessions.len())
    }

    fn ip_counts(&mut self, ip: IpAddr) -> &mut (usize, usize) {
        self.per_ip.entry(ip).or_default()
    }

    fn forget_ip(&mut self, ip: IpAddr) {
        if self.per_ip.get(&ip) == Some(&(0, 0)) {
            self.per_ip.remove(&ip);
        }
    }

    fn drop_pending(&mut self, id: u64) -> bool {
        let Some(ip) = self.pending.remove(&id) else {
            return false;
        };
        let c = self.ip_counts(ip);
        c.0 = c.0.saturating_sub(1);
        self.forget_ip(ip);
        true
    }

    fn drop_session(&mut self, id: u64) -> bool {
        let Some(s) = self.sessions.remove(&id) else {
            return false;
        };
        let c = self.ip_counts(s.ip);
        c.1 = c.1.saturating_sub(1);
        self.forget_ip(s.ip);
        true
    }

    /// A socket from `ip` was accepted: its id, and the pending handshake to cancel to
    /// make room for it (if any).
    pub fn handle_accept(&mut self, ip: IpAddr) -> (u64, Option<u64>) {
        let id = self.next;
        self.next += 1;
        let mut evict = None;
        let mine = self.per_ip.get(&ip).map_or(0, |c| c.0);
        if mine >= self.limits.handshakes_per_ip {
            evict = self
                .pending
                .iter()
                .find(|(_, p)| **p == ip)
                .map(|(id, _)| *id);
        } else if self.pending.len() >= self.limits.handshakes {
            evict = self.pending.keys().next().copied();
        }
        if let Some(e) = evict {
            self.drop_pending(e);
        }
        self.pending.insert(id, ip);
        self.ip_counts(ip).0 += 1;
        (id, evict)
    }

    /// Connection `id` finished its handshake at `now_ms`. `last_useful(s)` is when
    /// session `s` last did useful work (or was established). Returns the session to
    /// cancel to make room (if any), or a refusal (the caller closes `id`; it is
    /// forgotten). An unknown `id` (cancelled meanwhile) is refused.
    pub fn handle_established(
        &mut self,
        id: u64,
        now_ms: u64,
        last_useful: impl Fn(u64) -> u64,
    ) -> Result<Option<u64>, Refusal> {
        let Some(ip) = self.pending.get(&id).copied() else {
            return Err(Refusal::Cancelled);
        };
        self.drop_pending(id);
        let mine = self.per_ip.get(&ip).map_or(0, |c| c.1);
        let full_ip = mine >= self.limits.sessions_per_ip;
        let full = self.sessions.len() >= self.limits.sessions;
        let mut evict = None;
        if full_ip || full {
            let stale = |s: &u64| now_ms.saturating_sub(last_useful(*s)) >= self.limits.grace_ms;
            // Least recently useful, of the same address if that is what is full. Ties
            // go to the lower id (the older connection).
            evict = self
                .sessions
                .iter()
                .filter(|(s, x)| (!full_ip || x.ip == ip) && stale(s))
                .min_by_key(|(s, _)| (last_useful(**s), **s))
                .map(|(s, _)| *s);
            match evict {
                Some(e) => {
                    self.drop_session(e);
                }
                None => return Err(Refusal::SessionsBusy),
            }
        }
        self.sessions.insert(id, Session { ip });
        self.ip_counts(ip).1 += 1;
        Ok(evict)
    }

    /// Connection `id` ended (handshake failed, session over, or cancelled).
    pub fn handle_closed(&mut self, id: u64) {
        if !self.drop_pending(id) {
            self.drop_session(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn small() -> AdmitLimits {
        AdmitLimits {
            handshakes: 4,
            handshakes_per_ip: 2,
            sessions: 4,
            sessions_per_ip: 3,
            grace_ms: 100,
        }
    }

    #[test]
    fn silent_sockets_evict_their_own_oldest_handshake_first() {
        let mut a = Admission::new(small());
        let (h0, _) = a.handle_accept(ip(1));
        let (h1, _) = a.handle_accept(ip(1));
        let (_, e) = a.handle_accept(ip(1));
        assert_eq!(e, Some(h0), "its own oldest");
        let (g, _) = a.handle_accept(ip(2));
        let (_, _) = a.handle_accept(ip(3));
        // Global bound (4): the oldest overall goes, not the newest honest one.
        let (_, e) = a.handle_accept(ip(4));
        assert_eq!(e, Some(h1));
        assert!(
            a.handle_established(g, 0, |_| 0).is_ok(),
            "the honest dialer"
        );
    }

    #[test]
    fn idle_sessions_make_room_busy_ones_do_not() {
        let mut a = Admission::new(small());
        let mut ids = vec![];
        for n in 1..=4 {
            let (id, _) = a.handle_accept(ip(n));
            assert_eq!(a.handle_established(id, 0, |_| 0), Ok(None));
            ids.push(id);
        }
        let busy = |s: u64| if s == ids[1] { 500 } else { 0 };
        // Within the grace period nobody is evicted: refused.
        let (n, _) = a.handle_accept(ip(9));
        assert_eq!(
            a.handle_established(n, 50, busy),
            Err(Refusal::SessionsBusy)
        );
        // Later the least recently useful (the oldest idle) goes; the busy one stays.
        let (n, _) = a.handle_accept(ip(9));
        assert_eq!(a.handle_established(n, 550, busy), Ok(Some(ids[0])));
        let (n, _) = a.handle_accept(ip(9));
        assert_eq!(a.handle_established(n, 550, busy), Ok(Some(ids[2])));
        assert_eq!(a.counts(), (0, 4));
    }

    #[test]
    fn a_full_address_evicts_only_its_own_sessions() {
        let mut a = Admission::new(small());
        let (other, _) = a.handle_accept(ip(2));
        a.handle_established(other, 0, |_| 0).unwrap();
        let mut mine = vec![];
        for _ in 0..3 {
            let (id, _) = a.handle_accept(ip(1));
            a.handle_established(id, 0, |_| 0).unwrap();
            mine.push(id);
        }
        let (n, _) = a.handle_accept(ip(1));
        assert_eq!(a.handle_established(n, 1000, |_| 0), Ok(Some(mine[0])));
    }

    proptest! {
        /// Whatever happens, the bounds hold and the books balance.
        #[test]
        fn bounds_hold(ops in prop::collection::vec((0u8..4, 0u8..6, 0u64..400), 1..300)) {
            let l = small();
            let mut a = Admission::new(l.clone());
            // The caller's view: pending handshakes and sessions it has not been told
            // to cancel.
            let (mut pending, mut live): (Vec<u64>, Vec<u64>) = (vec![], vec![]);
            let mut now = 0;
            for (op, who, dt) in ops {
                now += dt;
                let pick = |v: &Vec<u64>| v.get(usize::from(who) % v.len().max(1)).copied();
                match op {
                    0 | 1 => {
                        let (id, e) = a.handle_accept(ip(who));
                        pending.retain(|x| Some(*x) != e);
                        pending.push(id);
                    }
                    2 => if let Some(id) = pick(&pending) {
                        pending.retain(|x| *x != id);
                        if let Ok(e) = a.handle_established(id, now, |s| s * 7 % 300) {
                            live.retain(|x| Some(*x) != e);
                            live.push(id);
                        }
                    },
                    _ => if let Some(id) = pick(&live).or(pick(&pending)) {
                        a.handle_closed(id);
                        live.retain(|x| *x != id);
                        pending.retain(|x| *x != id);
                    },
                }
                let (p, s) = a.counts();
                prop_assert!(p <= l.handshakes && s <= l.sessions);
                prop_assert_eq!((p, s), (pending.len(), live.len()));
                for (ph, ss) in a.per_ip.values() {
                    prop_assert!(*ph <= l.handshakes_per_ip && *ss <= l.sessions_per_ip);
                }
                let per: usize = a.per_ip.values().map(|(x, y)| x + y).sum();
                prop_assert_eq!(per, p + s);
            }
        }
    }
}
