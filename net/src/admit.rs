//! Who gets a connection slot: the listener's admission policy as a pure state machine
//! (time passed in as milliseconds; the tokio shell is [`crate::Listener`]).
//!
//! Connections are counted by **source group**: an IPv4 address, or an IPv6 /64 (one
//! host is usually given a whole /64; an IPv4-mapped IPv6 address counts as its IPv4
//! address). Two budgets, each global and per group:
//! - **Handshakes** (a socket accepted, Noise not yet done): at most
//!   [`AdmitLimits::handshakes`] at once, [`AdmitLimits::handshakes_per_ip`] from one
//!   group. A new socket over the group bound cancels its group's oldest pending
//!   handshake; over the global bound, the oldest pending handshake of a group with more
//!   than one pending (the oldest overall if none has). A loopback handshake takes
//!   milliseconds, so an attacker holding silent sockets only ever holds the newest few;
//!   and when the hoster's CPU is so busy that every handshake is slow (sessions that
//!   reconnect as fast as they can), a dialer alone on its address is not the one
//!   cancelled. Not "the oldest of the group with the most pending": eight readers
//!   behind one address then lost their handshakes to silent sockets spread over 50
//!   addresses (`hoster_hostile`, DESIGN §10).
//! - **Sessions** (handshake done): at most [`AdmitLimits::sessions`] at once,
//!   [`AdmitLimits::sessions_per_ip`] from one group. Over the group bound a newcomer
//!   evicts its own group's session that did useful work (a channel opened for a feed
//!   we serve, a request answered with data) least recently, if that one did none for
//!   [`AdmitLimits::grace_ms`]; else it is refused. Over the global bound it evicts, in
//!   this order: the least recently useful session past the grace period (idle ones
//!   make room first); else the least recently useful session of the group holding the
//!   most sessions, if that group holds at least two more than the newcomer's — so
//!   sessions that keep the hoster busy from a few addresses cannot lock out a reader
//!   from another (each group keeps a fair share, `sessions / groups`, and a group
//!   holding one session is never evicted while busy); else it is refused.
//! - **Expected sources** ([`Admission::handle_accept_expected`]: the committee
//!   listener's members, by their registered addresses): their handshakes have a lane
//!   of their own, under the group bound only. Outsiders from any number of groups
//!   (an IPv6 /48 is 65,536 of them) cannot cancel them, however slow the handshake.
//!
//! Call order: [`Admission::handle_accept`] (or [`Admission::handle_accept_expected`])
//! for each accepted socket (returns its id and the handshake to cancel, if any); then
//! exactly one of
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
    /// Pending handshakes from one source group (default 16).
    pub handshakes_per_ip: usize,
    /// Established sessions at once (default 256).
    pub sessions: usize,
    /// Established sessions from one source group (default 64).
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

/// The source group of `ip` (see the module docs): the key of every per-address count.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        },
    }
}

/// The admission state. See the module docs.
#[derive(Debug)]
pub struct Admission {
    limits: AdmitLimits,
    next: u64,
    /// Pending handshakes by id (ids grow: the first entry is the oldest), with their
    /// source group and whether they were expected.
    pending: BTreeMap<u64, (IpAddr, bool)>,
    /// How many of `pending` were expected (outside the global bound).
    expected: usize,
    /// Expected pending handshakes by source group (a lane of their own: not in
    /// `per_ip`).
    expected_per_ip: HashMap<IpAddr, usize>,
    sessions: HashMap<u64, Session>,
    /// Pending handshakes and sessions by source group.
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

impl Admission {
    /// An empty admission with these limits (each ≥ 1).
    pub fn new(limits: AdmitLimits) -> Self {
        Admission {
            limits,
            next: 0,
            pending: BTreeMap::new(),
            expected: 0,
            expected_per_ip: HashMap::new(),
            sessions: HashMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Pending handshakes not expected (those under the global bound) and established
    /// sessions now.
    pub fn counts(&self) -> (usize, usize) {
        (self.pending.len() - self.expected, self.sessions.len())
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
        let Some((ip, expected)) = self.pending.remove(&id) else {
            return false;
        };
        if expected {
            self.expected -= 1;
            if let Some(n) = self.expected_per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.expected_per_ip.remove(&ip);
                }
            }
        } else {
            let c = self.ip_counts(ip);
            c.0 = c.0.saturating_sub(1);
            self.forget_ip(ip);
        }
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
        self.accept(ip, false)
    }

    /// Like [`Admission::handle_accept`] for a socket from a source the caller expects
    /// a peer from (the committee: a member's registered address). Only the group
    /// bound applies to it; it neither counts toward the global handshake bound nor is
    /// cancelled to keep it; its group's expected handshakes are a lane of their own
    /// under the group bound (an outsider at the same address cannot cancel them
    /// either). The caller bounds how many groups it expects.
    pub fn handle_accept_expected(&mut self, ip: IpAddr) -> (u64, Option<u64>) {
        self.accept(ip, true)
    }

    fn accept(&mut self, ip: IpAddr, expected: bool) -> (u64, Option<u64>) {
        let ip = group(ip);
        let id = self.next;
        self.next += 1;
        let mine = if expected {
            self.expected_per_ip.get(&ip).copied().unwrap_or(0)
        } else {
            self.per_ip.get(&ip).map_or(0, |c| c.0)
        };
        let evict = if mine >= self.limits.handshakes_per_ip {
            self.pending
                .iter()
                .find(|(_, p)| **p == (ip, expected))
                .map(|(id, _)| *id)
        } else if !expected && self.pending.len() - self.expected >= self.limits.handshakes {
            // Of those not expected: the oldest of a group with more than one pending,
            // else the oldest.
            let crowded = |g: &IpAddr| self.per_ip.get(g).is_some_and(|c| c.0 > 1);
            let mut open = self.pending.iter().filter(|(_, p)| !p.1);
            open.clone()
                .find(|(_, p)| crowded(&p.0))
                .or_else(|| open.next())
                .map(|(id, _)| *id)
        } else {
            None
        };
        if let Some(e) = evict {
            self.drop_pending(e);
        }
        self.pending.insert(id, (ip, expected));
        if expected {
            self.expected += 1;
            *self.expected_per_ip.entry(ip).or_default() += 1;
        } else {
            self.ip_counts(ip).0 += 1;
        }
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
        let Some((ip, _)) = self.pending.get(&id).copied() else {
            return Err(Refusal::Cancelled);
        };
        self.drop_pending(id);
        let mine = self.per_ip.get(&ip).map_or(0, |c| c.1);
        let full_ip = mine >= self.limits.sessions_per_ip;
        let full = self.sessions.len() >= self.limits.sessions;
        let mut evict = None;
        if full_ip || full {
            let stale = |s: &u64| now_ms.saturating_sub(last_useful(*s)) >= self.limits.grace_ms;
            // Least recently useful of those allowed; ties go to the lower id (the older
            // connection).
            let lru = |allowed: &dyn Fn(u64, &Session) -> bool| {
                self.sessions
                    .iter()
                    .filter(|(s, x)| allowed(**s, x))
                    .min_by_key(|(s, _)| (last_useful(**s), **s))
                    .map(|(s, _)| *s)
            };
            evict = if full_ip {
                lru(&|s, x| x.ip == ip && stale(&s))
            } else {
                lru(&|s, _| stale(&s)).or_else(|| {
                    let most = self.per_ip.values().map(|c| c.1).max().unwrap_or(0);
                    if most < mine + 2 {
                        return None;
                    }
                    lru(&|_, x| self.per_ip.get(&x.ip).map_or(0, |c| c.1) == most)
                })
            };
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

    #[test]
    fn a_full_listener_cancels_a_crowded_group_not_the_oldest_lone_handshake() {
        let mut a = Admission::new(small());
        let (lone, _) = a.handle_accept(ip(9));
        let (c0, _) = a.handle_accept(ip(1));
        let (c1, _) = a.handle_accept(ip(1));
        a.handle_accept(ip(2));
        // Global bound (4): the crowded group loses its oldest; the lone dialer's
        // handshake, though the oldest overall, stays.
        assert_eq!(a.handle_accept(ip(3)).1, Some(c0));
        // Every group has one now: the oldest overall goes.
        assert_eq!(a.handle_accept(ip(4)).1, Some(lone));
        // ip(4) holds one (itself not counted yet): still the oldest overall.
        assert_eq!(a.handle_accept(ip(4)).1, Some(c1));
    }

    #[test]
    fn lone_outsiders_cannot_cancel_an_expected_handshake() {
        let mut a = Admission::new(small());
        let (member, e) = a.handle_accept_expected(ip(1));
        assert_eq!(e, None);
        // Lone outsiders from many groups fill the global bound and churn it: each new
        // one cancels the oldest *not expected* handshake, never the member's.
        let mut outsiders = vec![];
        for n in 10..60 {
            let (id, e) = a.handle_accept(ip(n));
            if let Some(e) = e {
                assert_ne!(e, member);
                outsiders.retain(|x| *x != e);
            }
            outsiders.push(id);
        }
        assert_eq!(a.counts(), (4, 0), "the member is outside the global bound");
        assert_eq!(outsiders.len(), 4);
        assert!(a.handle_established(member, 0, |_| 0).is_ok());
        // Its own group's bound still applies to an expected source.
        let (e0, _) = a.handle_accept_expected(ip(2));
        a.handle_accept_expected(ip(2));
        assert_eq!(a.handle_accept_expected(ip(2)).1, Some(e0));
    }

    #[test]
    fn busy_sessions_from_a_few_groups_make_room_for_another_group() {
        let mut a = Admission::new(small());
        let mut crowd = vec![];
        for _ in 0..3 {
            let (id, _) = a.handle_accept(ip(1));
            a.handle_established(id, 0, |_| 0).unwrap();
            crowd.push(id);
        }
        let (lone, _) = a.handle_accept(ip(2));
        a.handle_established(lone, 0, |_| 0).unwrap();
        // Everyone did useful work just now; crowd[1] least recently.
        let busy = |s: u64| if s == crowd[1] { 10 } else { 20 };
        let (n, _) = a.handle_accept(ip(9));
        assert_eq!(a.handle_established(n, 20, busy), Ok(Some(crowd[1])));
        // The crowded group may not take it back: 2 is not 2 more than its own 2.
        let (again, _) = a.handle_accept(ip(1));
        assert_eq!(
            a.handle_established(again, 20, busy),
            Err(Refusal::SessionsBusy)
        );
        // Another group may: then every group holds one and newcomers wait their turn.
        let (m, _) = a.handle_accept(ip(8));
        assert_eq!(a.handle_established(m, 20, busy), Ok(Some(crowd[0])));
        let (late, _) = a.handle_accept(ip(7));
        assert_eq!(
            a.handle_established(late, 20, busy),
            Err(Refusal::SessionsBusy)
        );
        assert_eq!(a.counts(), (0, 4));
    }

    #[test]
    fn an_ipv6_slash_64_is_one_group() {
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        assert_eq!(group(v6(1)), group(v6(0xffff)));
        assert_ne!(
            group(v6(1)),
            group(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]))
        );
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(group(mapped), IpAddr::from([192, 0, 2, 7]));
        // The per-group bound counts the whole /64: its third handshake cancels its first.
        let mut a = Admission::new(small());
        let (first, _) = a.handle_accept(v6(1));
        a.handle_accept(v6(2));
        assert_eq!(a.handle_accept(v6(3)).1, Some(first));
    }

    proptest! {
        /// Whatever happens, the bounds hold and the books balance.
        #[test]
        fn bounds_hold(ops in prop::collection::vec((0u8..5, 0u8..6, 0u64..400), 1..300)) {
            let l = small();
            let mut a = Admission::new(l.clone());
            // The caller's view: pending handshakes and sessions it has not been told
            // to cancel.
            let (mut pending, mut live): (Vec<u64>, Vec<u64>) = (vec![], vec![]);
            let mut from = HashMap::new();
            let useful = |s: u64| s * 7 % 300;
            let mut now = 0;
            for (op, who, dt) in ops {
                now += dt;
                let pick = |v: &Vec<u64>| v.get(usize::from(who) % v.len().max(1)).copied();
                match op {
                    0 | 1 | 4 => {
                        let (id, e) = if op == 4 {
                            a.handle_accept_expected(ip(who))
                        } else {
                            a.handle_accept(ip(who))
                        };
                        pending.retain(|x| Some(*x) != e);
                        pending.push(id);
                        from.insert(id, ip(who));
                    }
                    2 => if let Some(id) = pick(&pending) {
                        pending.retain(|x| *x != id);
                        if let Ok(e) = a.handle_established(id, now, useful) {
                            live.retain(|x| Some(*x) != e);
                            live.push(id);
                            // A session evicted while busy leaves its group at least
                            // as many as the newcomer's.
                            if let Some(e) = e.filter(|e| now.saturating_sub(useful(*e)) < l.grace_ms) {
                                let n = |i: u64| a.per_ip.get(&from[&i]).map_or(0, |c| c.1);
                                prop_assert!(from[&e] != from[&id] && n(e) >= n(id));
                            }
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
                prop_assert_eq!((p + a.expected, s), (pending.len(), live.len()));
                for (ph, ss) in a.per_ip.values() {
                    prop_assert!(*ph <= l.handshakes_per_ip && *ss <= l.sessions_per_ip);
                }
                let per: usize = a.per_ip.values().map(|(x, y)| x + y).sum();
                prop_assert_eq!(per, p + s);
                prop_assert_eq!(a.expected_per_ip.values().sum::<usize>(), a.expected);
                prop_assert!(a.expected_per_ip.values().all(|n| *n <= l.handshakes_per_ip));
            }
        }
    }
}
