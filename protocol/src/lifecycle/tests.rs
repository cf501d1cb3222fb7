//! The lifecycle driven step by step: real coin flips among three members (FIFO
//! delivery), a test task that reports its sample.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::coinflip::{CoinFlip, Config, Event, Outcome, commit_value};
use crate::identity::{Ed25519Verifier, Keypair};

const CHAIN: [u8; 32] = [3; 32];
/// Blocks of 1 s; a window of 60 blocks: flip phase 10 s, joins to 54 s.
const BLOCK_MS: u64 = 1000;
const NOTICE: Notice = Notice {
    challenge: 7,
    start: 100,
    end: 160,
    report_deadline: 170,
};

/// Reports its sample (and says "not done" with an empty one).
struct Sampler;

impl Task for Sampler {
    type Output = bool;
    type Fraud = FraudProof;
    fn not_done(&self) -> bool {
        false
    }
    fn conclusive(&self, out: &bool) -> bool {
        *out
    }
    fn fraud(&self, _: &bool) -> Vec<FraudProof> {
        Vec::new()
    }
    fn report(
        &self,
        _: bool,
        sample: Vec<u64>,
        flip: &FlipRecord,
        _: &Keypair,
    ) -> Result<Vec<u8>, &'static str> {
        let mut b = flip.round.to_le_bytes().to_vec();
        for i in sample {
            b.extend(i.to_le_bytes());
        }
        Ok(b)
    }
}

fn seed(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

fn member(i: usize) -> Member {
    Member {
        chain: CHAIN,
        key: Keypair::from_seed(&seed(i)),
        params: Params::new(BLOCK_MS, 8),
    }
}

fn committee(n: usize) -> Vec<PublicKey> {
    (0..n)
        .map(|i| Keypair::from_seed(&seed(i)).public())
        .collect()
}

fn facts(me: usize) -> Facts {
    Facts {
        committee: committee(3),
        me,
        feed_length: 1000,
        repeated_keys: false,
    }
}

fn at_block(b: u64) -> Instant {
    Instant(b * BLOCK_MS * 1000)
}

fn drain<T: Task>(l: &mut Lifecycle<T>) -> Vec<Action<T::Fraud>> {
    core::iter::from_fn(|| l.poll_action()).collect()
}

/// Run the flips `actions` asked for (all members', FIFO, no loss); each member's
/// outcome and signed reveals.
fn flip_all<F: core::fmt::Debug>(asks: &[(usize, Action<F>)]) -> Vec<(Outcome, Vec<SignedReveal>)> {
    let mut ms: Vec<CoinFlip> = asks
        .iter()
        .map(|(i, a)| {
            let Action::Flip {
                session,
                committee,
                budget,
                entropy,
                ..
            } = a
            else {
                panic!("not a flip: {a:?}");
            };
            let cfg = Config::within(*session, committee.clone(), *budget);
            CoinFlip::new(
                cfg,
                Keypair::from_seed(&seed(*i)),
                *entropy,
                Ed25519Verifier,
                at_block(100),
            )
            .unwrap()
        })
        .collect();
    let c = committee(asks.len());
    let mut queue = VecDeque::new();
    let mut out: Vec<Option<Outcome>> = vec![None; ms.len()];
    let mut reveals: Vec<Vec<SignedReveal>> = vec![Vec::new(); ms.len()];
    loop {
        for (i, m) in ms.iter_mut().enumerate() {
            while let Some(t) = m.poll_transmit() {
                if let Msg::Reveal(r) = &*t.msg
                    && !reveals[i].contains(r)
                {
                    reveals[i].push(r.clone());
                }
                queue.push_back((i, t));
            }
            while let Some(e) = m.poll_event() {
                if let Event::Finished(o) = e {
                    out[i] = Some(o);
                }
            }
        }
        let Some((from, t)) = queue.pop_front() else {
            break;
        };
        let to = c.iter().position(|k| *k == t.to).unwrap();
        ms[to].handle_message(at_block(101), &c[from], &t.msg);
    }
    out.into_iter()
        .zip(reveals)
        .map(|(o, r)| (o.expect("flip finished"), r))
        .collect()
}

/// Start three members at `head`, read facts, flip; each machine and its actions so far.
fn through_flip(head: u64) -> Vec<(Lifecycle<Sampler>, Vec<Action>)> {
    through_flip_with(head, || Sampler)
}

/// A member's machine and its actions so far.
type Started<T> = (Lifecycle<T>, Vec<Action<<T as Task>::Fraud>>);

/// [`through_flip`] with members running `task`.
fn through_flip_with<T: Task>(head: u64, task: impl Fn() -> T) -> Vec<Started<T>>
where
    T::Fraud: Clone + PartialEq + core::fmt::Debug,
{
    let mut ls: Vec<_> = (0..3)
        .map(|i| {
            let mut l = Lifecycle::new(
                NOTICE,
                member(i),
                task(),
                [i as u8 + 40; 32],
                at_block(head),
                head,
            );
            let a = drain(&mut l);
            assert_eq!(a, vec![Action::Persist, Action::ReadFacts]);
            l.handle_facts(at_block(head), facts(i));
            let a = drain(&mut l);
            (l, a)
        })
        .collect();
    let asks: Vec<(usize, Action<T::Fraud>)> = ls
        .iter()
        .enumerate()
        .map(|(i, (l, a))| {
            assert_eq!(a[0], Action::Persist, "entropy persisted before the flip");
            assert!(l.progress().entropy.is_some());
            (i, a[1].clone())
        })
        .collect();
    for ((l, acts), (o, r)) in ls.iter_mut().zip(flip_all(&asks)) {
        l.handle_flip_done(at_block(head + 1), &o, 0, r, Vec::new());
        *acts = drain(l);
    }
    ls
}

fn scheduled<F>(acts: &[Action<F>]) -> Instant {
    acts.iter()
        .find_map(|a| match a {
            Action::Scheduled { at, .. } => Some(*at),
            _ => None,
        })
        .expect("scheduled")
}

/// A task of another kind, like an execution check: it re-runs the sampled calls and
/// proves the ones the executor got wrong, with a proof type of its own.
struct Rerun {
    /// The calls the executor got wrong.
    wrong: Vec<u64>,
}

/// A test proof: the call proven wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
struct WrongCall(u64);

impl Task for Rerun {
    /// The sampled calls re-run (`None`: not run).
    type Output = Option<Vec<u64>>;
    type Fraud = WrongCall;
    fn not_done(&self) -> Self::Output {
        None
    }
    fn conclusive(&self, out: &Self::Output) -> bool {
        out.is_some()
    }
    fn fraud(&self, out: &Self::Output) -> Vec<WrongCall> {
        out.iter()
            .flatten()
            .filter(|c| self.wrong.contains(c))
            .map(|c| WrongCall(*c))
            .collect()
    }
    fn report(
        &self,
        out: Self::Output,
        sample: Vec<u64>,
        _: &FlipRecord,
        _: &Keypair,
    ) -> Result<Vec<u8>, &'static str> {
        let checked = out.unwrap_or_default();
        Ok(sample
            .iter()
            .map(|c| u8::from(checked.contains(c)) + u8::from(self.wrong.contains(c)))
            .collect())
    }
}

/// The machine runs another task unchanged: the flip's sample of calls, the task's own
/// proofs submitted before its report is persisted, the report after the window's end.
#[test]
fn a_second_kind_of_task_runs_on_the_same_machine() {
    let mut ls = through_flip_with(100, || Rerun { wrong: Vec::new() });
    let (l, acts) = &mut ls[0];
    let at = scheduled(acts);
    l.handle_timeout(at);
    let acts = drain(l);
    let Action::RunTask { sample, .. } = &acts[0] else {
        panic!("{acts:?}")
    };
    let sample = sample.clone();
    assert_eq!(sample.len(), 8);
    // The executor got two of the sampled calls wrong (the task learns which when it
    // runs): the same member restarted with that task, at the block of its join time.
    let head = at.0 / (BLOCK_MS * 1000);
    let mut l = Lifecycle::resume(
        l.progress().clone(),
        member(0),
        Rerun {
            wrong: vec![sample[1], sample[5]],
        },
        [40; 32],
        at_block(head),
        head,
    );
    assert_eq!(drain(&mut l), vec![Action::ReadFacts]);
    l.handle_facts(at_block(head), facts(0));
    assert_eq!(scheduled(&drain(&mut l)), at);
    l.handle_timeout(at);
    assert!(matches!(drain(&mut l)[..], [Action::RunTask { .. }]));
    l.handle_task_done(at, Some(sample.clone()));
    assert_eq!(
        drain(&mut l),
        vec![
            Action::SubmitFraud(Box::new(WrongCall(sample[1]))),
            Action::SubmitFraud(Box::new(WrongCall(sample[5]))),
            Action::Persist,
        ]
    );
    let report = l.progress().report.clone().unwrap();
    assert_eq!(report, vec![1, 2, 1, 1, 1, 2, 1, 1]);
    l.handle_head(at, 160);
    assert_eq!(drain(&mut l), vec![Action::SubmitReport(report)]);
}

#[test]
fn a_member_flips_audits_its_scheduled_sample_reports_after_the_end_and_watches() {
    let mut ls = through_flip(100);
    let (l, acts) = &mut ls[0];
    let flip = l.progress().flip.clone().unwrap();
    let r = flip.result.expect("R agreed");
    assert!(flip.transcript.is_some());
    assert_eq!(acts[0], Action::Persist);
    // The join time and sample are the schedule's for R and our round secret.
    let at = scheduled(acts);
    let w = Window {
        start: 10_000,
        end: 54_000,
        feed_length: 1000,
        samples: 8,
    };
    let a = schedule::assignment(&r, &flip.own.unwrap(), &w).unwrap();
    assert_eq!(at, Instant(at_block(100).0 + a.join_at * 1000));
    assert_eq!(l.poll_timeout(), Some(at));
    l.handle_timeout(Instant(at.0 - 1));
    assert!(drain(l).is_empty(), "nothing before the join time");
    l.handle_timeout(at);
    let acts = drain(l);
    let Action::RunTask { sample, cap } = &acts[0] else {
        panic!("{acts:?}")
    };
    assert_eq!(*sample, a.indices);
    assert_eq!(*cap, TAIL - Duration::from_millis(500));
    assert!(at_block(160).0 - at.0 > TAIL.as_micros() as u64);
    l.handle_task_done(at, true);
    assert_eq!(drain(l), vec![Action::Persist]);
    let report = l.progress().report.clone().unwrap();
    assert_eq!(report.len(), 4 + 8 * 8, "round and the whole sample");
    // Not before the window's end; refused as too early: again the next block only.
    l.handle_head(at, 159);
    assert!(drain(l).is_empty());
    l.handle_head(at, 160);
    assert_eq!(drain(l), vec![Action::SubmitReport(report.clone())]);
    l.handle_report_result(at, Submitted::TooEarly);
    l.handle_head(at, 160);
    assert!(drain(l).is_empty());
    l.handle_head(at, 161);
    assert_eq!(drain(l), vec![Action::SubmitReport(report)]);
    l.handle_report_result(at, Submitted::Accepted);
    assert_eq!(drain(l), vec![Action::Persist, Action::ReadChallenge]);
    assert!(l.progress().submitted);
    l.handle_challenge(
        at,
        Some(ChainView {
            settled: false,
            me: Some(0),
            accusations: Vec::new(),
        }),
    );
    l.handle_head(at, 162);
    assert!(drain(l).is_empty(), "read every {WATCH_EVERY} blocks");
    l.handle_head(at, 163);
    assert_eq!(drain(l), vec![Action::ReadChallenge]);
    l.handle_challenge(
        at,
        Some(ChainView {
            settled: true,
            me: Some(0),
            accusations: Vec::new(),
        }),
    );
    assert_eq!(drain(l), vec![Action::Done(Ended::Watched)]);
    assert!(l.is_done());
}

/// The window's tail: a tenth of its 60 blocks of 1 s.
const TAIL: Duration = Duration::from_secs(6);

/// Every member audits for the same time, the tail an on-time last joiner keeps,
/// however early it joins: members measure a slow hoster alike. (The old machine gave
/// each the time left to the window's end; `datdot-sim network` saw late joiners on a
/// slow hoster get fewer blocks than early ones and flagged outliers for it.)
#[test]
fn every_member_audits_for_the_same_time_whenever_it_joins() {
    let mut caps = Vec::new();
    let mut joins = Vec::new();
    for (l, acts) in &mut through_flip(100) {
        let at = scheduled(acts);
        l.handle_timeout(at);
        let acts = drain(l);
        let Action::RunTask { cap, .. } = &acts[0] else {
            panic!("{acts:?}")
        };
        caps.push(*cap);
        joins.push(at);
    }
    joins.sort();
    joins.dedup();
    assert_eq!(joins.len(), 3, "three different join times: {joins:?}");
    assert!(
        caps.iter().all(|c| *c == TAIL - Duration::from_millis(500)),
        "{caps:?}"
    );
}

#[test]
fn a_late_member_skips_the_flip_and_one_too_late_reports_not_audited() {
    // Learned of at block 110 (the head's time is "now"): the flip phase is over.
    let mut l = Lifecycle::new(NOTICE, member(0), Sampler, [1; 32], at_block(110), 110);
    drain(&mut l);
    l.handle_facts(at_block(110), facts(0));
    let acts = drain(&mut l);
    assert_eq!(acts[0], Action::FlipSkipped(FlipSkipped::PhaseOver));
    assert_eq!(l.progress().flip, Some(FlipRecord::none(0, Vec::new())));
    assert!(l.progress().entropy.is_none(), "no flip, no entropy");
    assert!(matches!(acts[2], Action::Scheduled { .. }));

    // Learned of at block 156: the window's tail is shorter than an on-time member's.
    let mut l = Lifecycle::new(NOTICE, member(0), Sampler, [1; 32], at_block(156), 156);
    drain(&mut l);
    l.handle_facts(at_block(156), facts(0));
    let acts = drain(&mut l);
    assert!(
        acts.iter().any(|a| matches!(a, Action::TooLate { .. })),
        "{acts:?}"
    );
    let report = l.progress().report.clone().expect("reported");
    assert_eq!(report.len(), 4, "no sample: not audited");
}

#[test]
fn two_members_sharing_a_transport_key_flip_nothing() {
    let mut l = Lifecycle::new(NOTICE, member(0), Sampler, [1; 32], at_block(100), 100);
    drain(&mut l);
    let mut f = facts(0);
    f.repeated_keys = true;
    l.handle_facts(at_block(100), f);
    assert_eq!(
        drain(&mut l)[0],
        Action::FlipSkipped(FlipSkipped::RepeatedKeys)
    );
}

#[test]
fn a_restart_resumes_each_step_without_repeating_one() {
    let mut ls = through_flip(100);
    let (l, acts) = &mut ls[1];
    let at = scheduled(acts);
    let p = l.progress().clone();
    let bytes = codec::to_bytes(&p);
    let p2: Progress = codec::from_bytes(&bytes).unwrap();
    assert_eq!(p2, p, "the record round-trips");

    // Restarted after the flip: no second flip, the same schedule.
    let mut r = Lifecycle::resume(p2, member(1), Sampler, [99; 32], at_block(120), 120);
    assert_eq!(drain(&mut r), vec![Action::ReadFacts]);
    r.handle_facts(at_block(120), facts(1));
    let acts = drain(&mut r);
    assert!(!acts.iter().any(|a| matches!(a, Action::Flip { .. })));
    assert_eq!(scheduled(&acts), at);

    // Restarted with a report: it is submitted, nothing is run again.
    l.handle_timeout(at);
    drain(l);
    l.handle_task_done(at, true);
    drain(l);
    let p = l.progress().clone();
    let mut r = Lifecycle::resume(p.clone(), member(1), Sampler, [99; 32], at_block(161), 161);
    assert_eq!(
        drain(&mut r),
        vec![Action::SubmitReport(p.report.clone().unwrap())]
    );
    // Restarted after the deadline: over.
    let mut r = Lifecycle::resume(p, member(1), Sampler, [99; 32], at_block(171), 171);
    assert_eq!(drain(&mut r), vec![Action::Done(Ended::DeadlinePassed)]);
}

#[test]
fn an_accused_member_publishes_the_reveal_that_opens_its_commit() {
    let mut ls = through_flip(100);
    let (l, acts) = &mut ls[2];
    let at = scheduled(acts);
    l.handle_timeout(at);
    drain(l);
    l.handle_task_done(at, true);
    l.handle_head(at, 160);
    drain(l);
    l.handle_report_result(at, Submitted::Accepted);
    drain(l);
    // Accused in round 3, a round it never revealed in (a slow link): the entropy gives
    // the reveal.
    let accused = |cleared| {
        Some(ChainView {
            settled: true,
            me: Some(2),
            accusations: vec![
                Accusation {
                    member: 2,
                    round: 3,
                    cleared,
                },
                Accusation {
                    member: 1,
                    round: 0,
                    cleared: false,
                },
            ],
        })
    };
    l.handle_challenge(at, accused(false));
    let acts = drain(l);
    let [Action::PublishReveal { round: 3, bytes }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    let Ok(Msg::Reveal(r)) = codec::from_bytes::<Msg>(bytes) else {
        panic!("not a reveal")
    };
    let session = coinflip::challenge_session(&CHAIN, 7);
    let entropy = l.progress().entropy.unwrap();
    let x = coinflip::x_of(&coinflip::round_secret(&entropy, &session, 3));
    assert_eq!(commit_value(&r.x), commit_value(&x));
    assert!(r.verify(&Ed25519Verifier));
    // Lost in transport: asked again at the next read; taken: never again.
    l.handle_reveal_result(at, 3, None);
    l.handle_head(at, 162);
    assert_eq!(drain(l), vec![Action::ReadChallenge]);
    l.handle_challenge(at, accused(false));
    assert!(matches!(
        drain(l)[0],
        Action::PublishReveal { round: 3, .. }
    ));
    l.handle_reveal_result(at, 3, Some(true));
    assert_eq!(drain(l), vec![Action::Persist]);
    l.handle_head(at, 164);
    drain(l);
    l.handle_challenge(at, accused(true));
    assert!(drain(l).is_empty());
    l.handle_head(at, NOTICE.answer_deadline() + 1);
    assert_eq!(drain(l), vec![Action::Done(Ended::Watched)]);
}

/// A large committee's offline rounds can accuse more members than a report carries.
/// The record kept them all, and decoding it (the restart) refused it: the challenge was
/// lost. The record keeps the report's first `MAX_ACCUSED`.
#[test]
fn a_record_with_many_accused_still_decodes() {
    let mut l = Lifecycle::new(NOTICE, member(0), Sampler, [1; 32], at_block(100), 100);
    drain(&mut l);
    l.handle_facts(at_block(100), facts(0));
    drain(&mut l);
    let key = Keypair::from_seed(&seed(1));
    let session = coinflip::challenge_session(&CHAIN, 7);
    let accused: Vec<SignedCommit> = (0..crate::report::MAX_ACCUSED as u32 + 6)
        .map(|r| SignedCommit::sign(&key, session, r, [r as u8; 32]))
        .collect();
    let out = Outcome::Offline {
        round: 3,
        phase: crate::coinflip::Phase::Commit,
        unresponsive: Vec::new(),
        withheld: Vec::new(),
    };
    l.handle_flip_done(at_block(101), &out, 3, Vec::new(), accused.clone());
    let p = l.progress().clone();
    let flip = p.flip.as_ref().unwrap();
    assert_eq!(flip.accused, accused[..crate::report::MAX_ACCUSED]);
    let back: Progress = codec::from_bytes(&codec::to_bytes(&p)).unwrap();
    assert_eq!(back, p);
}

proptest! {
    #[test]
    fn a_corrupt_record_is_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = codec::from_bytes::<Progress>(&bytes);
        let mut b = vec![codec::VERSION, 0x70];
        b.extend(&bytes);
        let _ = codec::from_bytes::<Progress>(&b);
    }

    /// Any order of inputs: no panic, at most one `Done`, nothing after it.
    #[test]
    fn inputs_in_any_order_never_panic(ops in proptest::collection::vec((0u8..8, 0u64..200), 0..40)) {
        let mut l = Lifecycle::new(NOTICE, member(0), Sampler, [1; 32], at_block(100), 100);
        let mut done = 0;
        for (op, v) in ops {
            let now = at_block(100 + v / 4);
            match op {
                0 => l.handle_facts(now, facts(0)),
                1 => l.handle_flip_done(now, &Outcome::Offline { round: 1, phase: crate::coinflip::Phase::Commit, unresponsive: Vec::new(), withheld: Vec::new() }, 1, Vec::new(), Vec::new()),
                2 => l.handle_timeout(now),
                3 => l.handle_task_done(now, v % 2 == 0),
                4 => l.handle_head(now, v),
                5 => l.handle_report_result(now, [Submitted::Accepted, Submitted::TooEarly, Submitted::Lost, Submitted::Refused, Submitted::AlreadyReported][v as usize % 5]),
                6 => l.handle_challenge(now, (v % 3 != 0).then(|| ChainView { settled: v % 2 == 0, me: Some(0), accusations: vec![Accusation { member: 0, round: (v % 4) as u32, cleared: false }] })),
                _ => l.handle_reveal_result(now, (v % 4) as u32, [None, Some(true), Some(false)][v as usize % 3]),
            }
            while let Some(a) = l.poll_action() {
                prop_assert_eq!(done, 0, "an action after Done: {:?}", a);
                if matches!(a, Action::Done(_)) {
                    done += 1;
                }
            }
        }
    }
}
