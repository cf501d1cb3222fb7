//! Unit tests of the coin-flip machine with plain ed25519, driven by a FIFO loop (the
//! randomised, many-node tests live in `datdot-sim`).

use alloc::vec::Vec;
use core::time::Duration;

use super::*;
use crate::identity::{Ed25519Verifier, Keypair, PublicKey};
use crate::time::Instant;

const S: SessionId = [9; 32];

fn keys(n: u8) -> Vec<Keypair> {
    (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

fn committee(ks: &[Keypair]) -> Vec<PublicKey> {
    ks.iter().map(Keypair::public).collect()
}

fn machines(n: u8, confirm: bool) -> (Vec<PublicKey>, Vec<CoinFlip>) {
    let ks = keys(n);
    let c = committee(&ks);
    let ms = ks
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let mut cfg = Config::new(S, c.clone());
            cfg.confirm = confirm;
            CoinFlip::new(cfg, k, [i as u8; 32], Ed25519Verifier, Instant::ZERO).unwrap()
        })
        .collect();
    (c, ms)
}

/// Deliver everything in FIFO order, no timers; returns each member's events.
fn drive(c: &[PublicKey], ms: &mut [CoinFlip], drop_from: Option<usize>) -> Vec<Vec<Event>> {
    let mut queue = alloc::collections::VecDeque::new();
    let mut events = alloc::vec![Vec::new(); ms.len()];
    let now = Instant(1_000);
    loop {
        for (i, m) in ms.iter_mut().enumerate() {
            while let Some(t) = m.poll_transmit() {
                if Some(i) != drop_from {
                    queue.push_back((i, t));
                }
            }
            events[i].extend(core::iter::from_fn(|| m.poll_event()));
        }
        let Some((from, t)) = queue.pop_front() else {
            break;
        };
        let to = c.iter().position(|k| *k == t.to).unwrap();
        ms[to].handle_message(now, &c[from], &t.msg);
    }
    events
}

fn result(events: &[Event]) -> Option<crate::hash::Hash> {
    events.iter().find_map(|e| match e {
        Event::Finished(Outcome::Success {
            result, transcript, ..
        }) => {
            assert_eq!(transcript.verify(&Ed25519Verifier), Ok(*result));
            Some(*result)
        }
        _ => None,
    })
}

#[test]
fn honest_members_agree_with_and_without_confirmation() {
    for confirm in [false, true] {
        let (c, mut ms) = machines(5, confirm);
        let ev = drive(&c, &mut ms, None);
        let r0 = result(&ev[0]).expect("member 0 succeeded");
        for e in &ev {
            assert_eq!(result(e), Some(r0));
            assert!(!e.iter().any(|x| matches!(x, Event::Fraud { .. })));
        }
        // Different entropy, different R.
        let ks = keys(5);
        let cfg = Config::new(S, c.clone());
        let mut other: Vec<CoinFlip> = ks
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                CoinFlip::new(
                    cfg.clone(),
                    k,
                    [100 + i as u8; 32],
                    Ed25519Verifier,
                    Instant::ZERO,
                )
                .unwrap()
            })
            .collect();
        let ev2 = drive(&c, &mut other, None);
        assert_ne!(result(&ev2[0]), Some(r0));
    }
}

/// A silent member costs one round: the round times out naming it, the others bench it
/// and succeed without it in the next round (the old machine retried with it until
/// `max_rounds` ran out and failed offline, so one silent member denied everyone an `R`).
#[test]
fn a_silent_member_costs_one_round_and_is_benched() {
    let silent = 3;
    let (c, finished, _) = run_with_silent(4, silent, |c| Config::new(S, c));
    let mut results = Vec::new();
    for o in &finished {
        match o {
            Some(Outcome::Success {
                round: 1,
                result,
                transcript,
            }) => {
                assert!(transcript.commits.iter().all(|x| x.signer != c[silent]));
                assert_eq!(transcript.commits.len(), 3);
                results.push(*result);
            }
            other => panic!("expected success in round 1, got {other:?}"),
        }
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "one R");
    // With too few left to bench it (3 members, 3 needed), every round is retried with it
    // (as before benching) and the flip ends offline after `max_rounds`, naming it; a
    // member that never committed leaves no commit to accuse it with.
    let (c, finished, now) = run_with_silent(3, 2, |c| Config::new(S, c));
    // Backoff grew between rounds: 4 rounds × 5 s + 0.5 + 1 + 2 s of backoff.
    assert!(now >= Instant::ZERO + Duration::from_millis(23_500));
    for o in &finished {
        match o {
            Some(Outcome::Offline {
                round: 3,
                phase: Phase::Commit,
                unresponsive,
                withheld,
            }) => {
                assert_eq!(unresponsive, &alloc::vec![c[2]]);
                assert!(withheld.is_empty(), "a silent member committed nothing");
            }
            other => panic!("expected offline in round 3, got {other:?}"),
        }
    }
}

#[test]
fn strangers_wrong_sessions_and_stale_rounds_are_ignored() {
    let (c, mut ms) = machines(3, false);
    let stranger = Keypair::from_seed(&[200; 32]);
    let commit = SignedCommit::sign(&stranger, S, 0, [1; 32]);
    ms[0].handle_message(Instant(1), &stranger.public(), &Msg::Commit(commit));
    let other_session = SignedCommit::sign(&keys(3)[1], [1; 32], 0, [1; 32]);
    ms[0].handle_message(Instant(1), &c[1], &Msg::Commit(other_session));
    // A commit claiming to be from member 2, sent by member 1: not accepted.
    let spoofed = SignedCommit::sign(&keys(3)[2], S, 0, [1; 32]);
    ms[0].handle_message(Instant(1), &c[1], &Msg::Commit(spoofed));
    assert_eq!(ms[0].stats().ignored, 3);
    let ev = drive(&c, &mut ms, None);
    assert!(
        ev.iter().all(|e| result(e).is_some()),
        "the flip still completes"
    );
}

#[test]
fn config_is_validated() {
    let ks = keys(3);
    let c = committee(&ks);
    let me = Keypair::from_seed(&[50; 32]);
    let err = |cfg: Config, k: Keypair| {
        CoinFlip::new(cfg, k, [0; 32], Ed25519Verifier, Instant::ZERO).unwrap_err()
    };
    assert_eq!(err(Config::new(S, c.clone()), me), ConfigError::NotAMember);
    let mut dup = c.clone();
    dup.push(c[0]);
    assert_eq!(
        err(Config::new(S, dup), Keypair::from_seed(&[1; 32])),
        ConfigError::Duplicate(3)
    );
    assert_eq!(
        err(
            Config::new(S, c[..2].to_vec()),
            Keypair::from_seed(&[1; 32])
        ),
        ConfigError::CommitteeSize(2)
    );
    let mut zero = Config::new(S, c);
    zero.max_rounds = 0;
    assert_eq!(
        err(zero, Keypair::from_seed(&[1; 32])),
        ConfigError::MaxRounds
    );
}

/// Run machines with `cfg(committee)` where member `silent` sends nothing; returns the
/// honest members' outcomes and the time the last one finished.
fn run_with_silent(
    n: u8,
    silent: usize,
    cfg: impl Fn(Vec<PublicKey>) -> Config,
) -> (Vec<PublicKey>, Vec<Option<Outcome>>, Instant) {
    let ks = keys(n);
    let c = committee(&ks);
    let mut ms: Vec<CoinFlip> = ks
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            CoinFlip::new(
                cfg(c.clone()),
                k,
                [i as u8; 32],
                Ed25519Verifier,
                Instant::ZERO,
            )
            .unwrap()
        })
        .collect();
    let honest: Vec<usize> = (0..n as usize).filter(|&i| i != silent).collect();
    let mut now = Instant::ZERO;
    let mut finished = alloc::vec![None; n as usize];
    for _ in 0..256 {
        let ev = drive(&c, &mut ms, Some(silent));
        for (i, e) in ev.into_iter().enumerate() {
            for x in e {
                if let Event::Finished(o) = x {
                    finished[i] = Some(o);
                }
            }
        }
        let Some(t) = honest.iter().filter_map(|&i| ms[i].poll_timeout()).min() else {
            break;
        };
        now = now.max(t);
        for &i in &honest {
            ms[i].handle_timeout(now);
        }
    }
    finished.remove(silent);
    (c, finished, now)
}

/// The audit window cannot wait for a silent (or withholding) member: a flip made with
/// `Config::within(budget)` is over before `budget` — with an `R` from the others once
/// the member is benched, or, when too few would be left, offline naming it.
#[test]
fn a_silent_member_cannot_push_a_budgeted_flip_past_its_budget() {
    let budget = Duration::from_secs(4);
    for (n, max_rounds) in [(4, None), (4, Some(100)), (3, None), (3, Some(100))] {
        let (c, finished, end) = run_with_silent(n, usize::from(n - 1), |c| {
            let cfg = Config::within(S, c, budget);
            Config {
                max_rounds: max_rounds.unwrap_or(cfg.max_rounds),
                ..cfg
            }
        });
        for o in &finished {
            match o {
                Some(Outcome::Success { round: 1, .. }) if n == 4 => {}
                Some(Outcome::Offline { unresponsive, .. }) if n == 3 => {
                    assert_eq!(unresponsive, &alloc::vec![c[2]]);
                }
                other => panic!("n = {n}: unexpected {other:?}"),
            }
        }
        assert!(
            end <= Instant::ZERO + budget,
            "over by {:?}",
            end - (Instant::ZERO + budget)
        );
    }
    let c = committee(&keys(4));
    // Timeouts scale with the budget and never exceed the defaults.
    let d = Config::new(S, c.clone());
    let long = Config::within(S, c.clone(), Duration::from_secs(3600));
    assert_eq!(long.commit_timeout, d.commit_timeout);
    assert_eq!(long.max_backoff, d.max_backoff);
    let short = Config::within(S, c, Duration::from_millis(10));
    assert_eq!(short.commit_timeout, MIN_PHASE);
}

/// Our own commits (to peer `to`) that `m` queued, by round.
fn own_commits(m: &mut CoinFlip, me: &PublicKey) -> Vec<SignedCommit> {
    core::iter::from_fn(|| m.poll_transmit())
        .filter_map(|t| match t.msg.as_ref() {
            Msg::Commit(c) if c.signer == *me => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// A member killed mid-flip and restarted with its persisted entropy must never sign a
/// second, different commit for a round (peers would prove "equivocation" against it):
/// its rounds after the restart may take another path — before the kill it went 0 → 1
/// → 2 by timeouts, after it an equivocator's exclusion moves it to round 1 — and every
/// round's commit is the same, since `x` is derived from the entropy and the round
/// number alone. (The attestor stores the entropy before the flip's first message; it
/// used to draw fresh entropy on a restart: a second round-0 commit.)
#[test]
fn a_restarted_member_commits_the_same_secret_in_every_round() {
    let ks = keys(6);
    let c = committee(&ks);
    let me = c[0];
    let entropy = [42; 32];
    let flip = |e: [u8; 32]| {
        CoinFlip::new(
            Config::new(S, c.clone()),
            Keypair::from_seed(&[1; 32]),
            e,
            Ed25519Verifier,
            Instant::ZERO,
        )
        .unwrap()
    };
    let equivocate = |m: &mut CoinFlip, who: usize, round: u32| {
        for y in [[1; 32], [2; 32]] {
            let msg = Msg::Commit(SignedCommit::sign(&ks[who], S, round, y));
            m.handle_message(Instant(1), &c[who], &msg);
        }
    };
    // Before the kill: members 5 and 4 equivocate; rounds 0, 1, 2 start.
    let mut before = flip(entropy);
    let mut commits = own_commits(&mut before, &me);
    equivocate(&mut before, 5, 0);
    commits.extend(own_commits(&mut before, &me));
    equivocate(&mut before, 4, 1);
    commits.extend(own_commits(&mut before, &me));
    assert_eq!(before.round(), 2);
    let in_round = |cs: &[SignedCommit], r: u32| cs.iter().find(|c| c.round == r).cloned();
    for r in 0..=2 {
        assert_eq!(
            in_round(&commits, r).map(|c| c.y),
            Some(commit_value(&x_of(&round_secret(&entropy, &S, r)))),
            "round {r}: x is the documented derivation"
        );
    }
    // After the restart, another path: member 3 equivocates in round 0; we exclude it
    // and go on to round 1 with another member set.
    let mut after = flip(entropy);
    let mut again = own_commits(&mut after, &me);
    equivocate(&mut after, 3, 0);
    assert_eq!(after.round(), 1, "the exclusion started the next round");
    again.extend(own_commits(&mut after, &me));
    for r in 0..=1 {
        assert_eq!(
            in_round(&again, r),
            in_round(&commits, r),
            "round {r}: the same commit"
        );
    }
    // Fresh entropy (what a restart used to draw) commits to another x in round 0.
    let mut fresh = flip([43; 32]);
    assert_ne!(
        in_round(&own_commits(&mut fresh, &me), 0),
        in_round(&commits, 0)
    );
}
