//! Challenges end to end: scheduling, reports, settlement arithmetic, penalties,
//! suspension, slashing, accusations and bounded storage.

use frame::testing_prelude::*;

use crate::mock::*;
use crate::settle::{INITIAL_SCORE, SCORE_STEP};
use crate::types::*;
use crate::{Challenges, Contracts, Error, Event, FeedHistory, Feeds, HosterHistory, Participants};
use datdot_protocol::coinflip::commit_value;
use datdot_protocol::metrics::MetricSummary;

fn committee(id: ChallengeId) -> Vec<u64> {
    Challenges::<Test>::get(id)
        .expect("challenge")
        .attestors
        .to_vec()
}

#[test]
fn honest_path_pays_everyone_and_penalises_no_one() {
    new_test_ext().execute_with(|| {
        let (contract, hoster) = world(2);
        let ch = Challenges::<Test>::get(0).expect("scheduled");
        assert_eq!((ch.start, ch.end, ch.report_deadline), (2, 7, 12));
        assert_eq!(ch.attestors.len(), 3);
        assert!(!ch.attestors.contains(&hoster) && !ch.attestors.contains(&PUBLISHER));
        let mut sorted = ch.attestors.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "distinct");
        assert_eq!(
            ch.keys.to_vec(),
            ch.attestors.iter().map(|a| key_of(*a)).collect::<Vec<_>>()
        );
        assert!(
            events()
                .iter()
                .any(|e| matches!(e, Event::ChallengeScheduled { challenge: 0, .. }))
        );

        for period in 0..2u64 {
            let id = period;
            let start = 2 + 20 * period;
            run_to(start + 5);
            for a in committee(id) {
                assert_ok!(submit(id, a, good_metrics()));
            }
            let ch = Challenges::<Test>::get(id).expect("kept for the fraud window");
            assert_eq!(ch.verdict, Some(Verdict::Pass));
            run_to(start + 20);
        }
        // Hoster paid twice, every attestor paid for each report, nobody lost stake.
        assert_eq!(free(hoster), FUNDS - HOSTER_STAKE + 2 * PRICE);
        assert_eq!(stake(hoster), HOSTER_STAKE);
        let mut reports = 0;
        for a in ATTESTORS {
            assert_eq!(stake(a), ATTESTOR_STAKE, "attestor {a} kept its stake");
            let paid = free(a) - (FUNDS - ATTESTOR_STAKE);
            assert_eq!(paid % REWARD, 0);
            reports += paid / REWARD;
            assert!(Participants::<Test>::get(a).expect("a").score >= INITIAL_SCORE);
        }
        assert_eq!(reports, 6);
        assert!(
            !events()
                .iter()
                .any(|e| matches!(e, Event::Penalised { .. }))
        );
        // Periods used up: the contract and the plan ended; escrow fully spent.
        assert!(Contracts::<Test>::get(contract).is_none());
        assert!(Feeds::<Test>::get(0).is_none());
        assert!(events().contains(&Event::PlanEnded { feed: 0, refund: 0 }));
        assert_eq!(free(PUBLISHER), FUNDS - 2 * (PRICE + 3 * REWARD));
        let h = HosterHistory::<Test>::get(hoster);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].verdict, Verdict::Pass);
        assert_eq!(h[0].median, Some(good_metrics()));
        let p = Participants::<Test>::get(hoster).expect("h");
        assert_eq!(
            (p.score, p.failures, p.hosting),
            (INITIAL_SCORE + 2 * SCORE_STEP, 0, 0)
        );
        // Challenges are pruned after the fraud window.
        run_to(2 + 20 + 11 + 20);
        assert!(Challenges::<Test>::get(1).is_none());
    });
}

#[test]
fn report_errors() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let members = committee(0);
        let a = members[0];
        let outsider = ATTESTORS
            .into_iter()
            .find(|x| !members.contains(x))
            .expect("5 > 3");
        assert_noop!(
            submit_raw(9, a, report_of(9, a, hoster)),
            Error::<Test>::NoSuchChallenge
        );
        assert_noop!(
            submit_raw(0, outsider, report_of(0, outsider, hoster)),
            Error::<Test>::NotInCommittee
        );
        run_to(6);
        assert_noop!(submit(0, a, good_metrics()), Error::<Test>::TooEarly);
        run_to(7);
        let garbage: BoundedVec<u8, _> = b"not a report".to_vec().try_into().expect("small");
        assert_noop!(
            Datdot::submit_report(RuntimeOrigin::signed(a), 0, garbage),
            Error::<Test>::MalformedReport
        );
        assert_noop!(
            submit_raw(0, a, report_of(1, a, hoster)),
            Error::<Test>::WrongChallenge
        );
        // Signed with someone else's key.
        assert_noop!(
            Datdot::submit_report(
                RuntimeOrigin::signed(a),
                0,
                signed(report_of(0, a, hoster), 2)
            ),
            Error::<Test>::WrongSigningKey
        );
        assert_noop!(
            submit_raw(0, a, report_of(0, a, 2)),
            Error::<Test>::WrongHoster
        );
        let mut wrong_feed = report_of(0, a, hoster);
        wrong_feed.feed = key_of(3);
        assert_noop!(submit_raw(0, a, wrong_feed), Error::<Test>::WrongFeed);
        // Tampered after signing.
        let mut r = report_of(0, a, hoster).sign(&kp(a));
        r.metrics.requests += 1;
        let bytes: BoundedVec<u8, _> = datdot_protocol::codec::to_bytes(&r)
            .try_into()
            .expect("small");
        assert_noop!(
            Datdot::submit_report(RuntimeOrigin::signed(a), 0, bytes),
            Error::<Test>::InvalidReport
        );
        // Ill-formed metrics (p50 > p99) do not even decode.
        let mut ill = report_of(0, a, hoster);
        ill.metrics.latency_p50_us = ill.metrics.latency_p99_us + 1;
        assert_noop!(submit_raw(0, a, ill), Error::<Test>::MalformedReport);
        assert_ok!(submit(0, a, good_metrics()));
        assert_noop!(submit(0, a, good_metrics()), Error::<Test>::AlreadyReported);
        for m in &members[1..] {
            assert_ok!(submit(0, *m, good_metrics()));
        }
        assert_noop!(submit(0, a, good_metrics()), Error::<Test>::AlreadySettled);
    });
}

use crate::mock::send_report as submit_raw;

#[test]
fn a_report_after_the_deadline_is_too_late() {
    new_test_ext().execute_with(|| {
        world(2);
        let members = committee(0);
        run_to(12);
        assert_ok!(submit(0, members[0], good_metrics()));
        // Block 13 settles (on_initialize) before any extrinsic: report window closed.
        run_to(13);
        assert_noop!(
            submit(0, members[1], good_metrics()),
            Error::<Test>::AlreadySettled
        );
        // A fresh challenge with no report at all, checked just after its deadline
        // but before the settle task runs, is `TooLate`.
        run_to(22 + 5);
        let next = committee(1);
        System::set_block_number(33); // past deadline 32, agenda of 33 not yet run
        assert_noop!(submit(1, next[0], good_metrics()), Error::<Test>::TooLate);
    });
}

#[test]
fn deadline_settlement_penalises_the_silent_and_flags_the_liar() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        assert_ok!(submit(0, m[0], good_metrics()));
        let mut liar = good_metrics();
        liar.throughput_bps *= 10;
        liar.throughput_p50_bps = liar.throughput_bps;
        assert_ok!(submit(0, m[1], liar));
        // m[2] stays silent.
        run_to(13);
        let ch = Challenges::<Test>::get(0).expect("kept");
        assert_eq!(
            ch.verdict,
            Some(Verdict::Pass),
            "lower median of two is the honest one"
        );
        assert_eq!(free(hoster), FUNDS - HOSTER_STAKE + PRICE);
        assert_eq!(free(m[0]), FUNDS - ATTESTOR_STAKE + REWARD);
        assert_eq!(free(m[1]), FUNDS - ATTESTOR_STAKE, "outlier earns nothing");
        assert!(events().contains(&Event::OutlierFlagged {
            challenge: 0,
            attestor: m[1]
        }));
        assert_eq!(stake(m[2]), ATTESTOR_STAKE - 50);
        assert!(events().contains(&Event::Penalised {
            who: m[2],
            amount: 50,
            reason: crate::PenaltyReason::MissedReport
        }));
        assert_eq!(
            Participants::<Test>::get(m[1]).expect("p").score,
            INITIAL_SCORE - SCORE_STEP
        );
        assert_eq!(
            Participants::<Test>::get(m[2]).expect("p").score,
            INITIAL_SCORE - SCORE_STEP
        );
        // Budget 130 = 100 hoster + 10 m[0]; 20 back to the escrow (1 period left = 130).
        assert_eq!(Feeds::<Test>::get(0).expect("feed").escrow, 130 + 20);
        assert!(FeedHistory::<Test>::get(0).len() == 1);
        // Stake below the minimum suspends the silent attestor: it is not drawn again.
        assert_eq!(
            Participants::<Test>::get(m[2]).expect("p").status,
            Status::Suspended
        );
        run_to(22);
        assert!(!committee(1).contains(&m[2]));
    });
}

#[test]
fn too_few_reports_is_inconclusive_and_the_period_is_not_used() {
    new_test_ext().execute_with(|| {
        let (contract, hoster) = world(1);
        let m = committee(0);
        run_to(7);
        assert_ok!(submit(0, m[0], good_metrics()));
        run_to(13);
        assert_eq!(
            Challenges::<Test>::get(0).and_then(|c| c.verdict),
            Some(Verdict::Inconclusive)
        );
        assert_eq!(free(hoster), FUNDS - HOSTER_STAKE, "not paid");
        let c = Contracts::<Test>::get(contract).expect("still running");
        assert_eq!(c.periods_left, 1);
        let p = Participants::<Test>::get(hoster).expect("h");
        assert_eq!((p.score, p.failures), (INITIAL_SCORE, 0), "not judged");
        // Escrow: 130 - 10 (reporter) back in the feed; the next challenge runs.
        assert_eq!(Feeds::<Test>::get(0).expect("feed").escrow, 120);
        run_to(22);
        assert!(Challenges::<Test>::contains_key(1) || Feeds::<Test>::get(0).is_none());
    });
}

fn fail_challenge(id: ChallengeId) {
    let start = 2 + 20 * id;
    run_to(start + 5);
    for a in committee(id) {
        assert_ok!(submit(id, a, bad_metrics()));
    }
    assert_eq!(
        Challenges::<Test>::get(id).and_then(|c| c.verdict),
        Some(Verdict::Fail { failed: 1 | 2 | 4 })
    );
}

#[test]
fn failures_suspend_then_slash_and_replace() {
    new_test_ext().execute_with(|| {
        let (contract, hoster) = world(10);
        fail_challenge(0);
        assert_eq!(Participants::<Test>::get(hoster).expect("h").failures, 1);
        assert_eq!(
            free(hoster),
            FUNDS - HOSTER_STAKE,
            "failing periods are not paid"
        );
        fail_challenge(1);
        let p = Participants::<Test>::get(hoster).expect("h");
        assert_eq!(
            (p.failures, p.status, p.stake),
            (2, Status::Suspended, HOSTER_STAKE)
        );
        assert!(events().contains(&Event::Suspended { who: hoster }));
        fail_challenge(2);
        assert_eq!(stake(hoster), HOSTER_STAKE - HOSTER_STAKE / 10);
        assert!(events().contains(&Event::Penalised {
            who: hoster,
            amount: HOSTER_STAKE / 10,
            reason: crate::PenaltyReason::Failures
        }));
        let replacement = events().into_iter().find_map(|e| match e {
            Event::HosterReplaced {
                contract: c,
                replacement,
                ..
            } if c == contract => replacement,
            _ => None,
        });
        let new = Contracts::<Test>::get(replacement.expect("replaced")).expect("new contract");
        assert_ne!(new.hoster, hoster);
        assert_eq!(new.periods_left, 7);
        // Attestors were paid for every judged challenge, whatever the verdict.
        assert_eq!(Participants::<Test>::get(hoster).expect("h").hosting, 0);
    });
}

#[test]
fn a_pass_reinstates_a_suspended_hoster() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(10);
        fail_challenge(0);
        fail_challenge(1);
        assert_eq!(
            Participants::<Test>::get(hoster).expect("h").status,
            Status::Suspended
        );
        run_to(2 + 40 + 5);
        for a in committee(2) {
            assert_ok!(submit(2, a, good_metrics()));
        }
        let p = Participants::<Test>::get(hoster).expect("h");
        assert_eq!((p.status, p.failures), (Status::Active, 0));
        assert!(events().contains(&Event::Reinstated { who: hoster }));
    });
}

#[test]
fn withholding_accusations_penalise_unless_the_reveal_is_published() {
    for publish_reveal in [false, true] {
        new_test_ext().execute_with(|| {
            let (_, hoster) = world(2);
            let m = committee(0);
            run_to(7);
            for (i, a) in m.iter().enumerate() {
                let mut r = report_of(0, *a, hoster);
                if i < 2 {
                    // The flip failed in round 1: no transcript; m[2]'s commit held.
                    r.coinflip.round = 1;
                    r.coinflip.transcript = None;
                    r.coinflip.accused =
                        vec![commit_of(0, m[2], 1, [4; 32]), commit_of(0, *a, 1, [5; 32])];
                }
                assert_ok!(Datdot::submit_report(
                    RuntimeOrigin::signed(*a),
                    0,
                    signed(r, *a)
                ));
            }
            let ch = Challenges::<Test>::get(0).expect("c");
            assert_eq!(
                ch.accusations.to_vec(),
                vec![Accusation {
                    member: 2,
                    round: 1,
                    commit: commit_value(&[4; 32]),
                    count: 2,
                    cleared: false
                }],
                "self-accusations are ignored"
            );
            if publish_reveal {
                assert_ok!(Datdot::publish_reveal(
                    RuntimeOrigin::signed(m[2]),
                    0,
                    reveal(0, m[2], 1)
                ));
            }
            run_to(18);
            let penalised = stake(m[2]) < ATTESTOR_STAKE;
            assert_eq!(penalised, !publish_reveal);
            if penalised {
                assert_eq!(stake(m[2]), ATTESTOR_STAKE - 40);
            }
        });
    }
}

pub(crate) fn reveal(
    id: ChallengeId,
    who: u64,
    round: u32,
) -> BoundedVec<u8, ConstU32<{ crate::MAX_REVEAL_BYTES }>> {
    reveal_of(id, who, round, [4; 32])
}

fn reveal_of(
    id: ChallengeId,
    who: u64,
    round: u32,
    x: [u8; 32],
) -> BoundedVec<u8, ConstU32<{ crate::MAX_REVEAL_BYTES }>> {
    let r = datdot_protocol::coinflip::SignedReveal::sign(&kp(who), session_id(id), round, x);
    datdot_protocol::codec::to_bytes(&datdot_protocol::coinflip::Msg::Reveal(r))
        .try_into()
        .expect("small")
}

#[test]
fn publish_reveal_errors() {
    new_test_ext().execute_with(|| {
        world(2);
        let m = committee(0);
        let outsider = ATTESTORS
            .into_iter()
            .find(|x| !m.contains(x))
            .expect("5 > 3");
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 9, reveal(9, m[0], 0)),
            Error::<Test>::NoSuchChallenge
        );
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(outsider), 0, reveal(0, outsider, 0)),
            Error::<Test>::NotInCommittee
        );
        assert_noop!(
            Datdot::publish_reveal(
                RuntimeOrigin::signed(m[0]),
                0,
                b"x".to_vec().try_into().expect("small")
            ),
            Error::<Test>::MalformedReveal
        );
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, reveal(1, m[0], 0)),
            Error::<Test>::WrongSession
        );
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, reveal(0, m[1], 0)),
            Error::<Test>::WrongSigningKey
        );
        let r = datdot_protocol::coinflip::SignedReveal::sign(&kp(m[0]), session_id(0), 0, [4; 32]);
        let mut forged = r.clone();
        forged.x = [5; 32];
        let bytes: BoundedVec<u8, _> =
            datdot_protocol::codec::to_bytes(&datdot_protocol::coinflip::Msg::Reveal(forged))
                .try_into()
                .expect("small");
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, bytes),
            Error::<Test>::InvalidReveal
        );
        // Nothing to answer yet: a reveal never creates an entry (it used to, and any
        // signed reveal of any round filled the list and cleared what came later).
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, reveal(0, m[0], 0)),
            Error::<Test>::NotAccused
        );
        run_to(7);
        let hoster = Challenges::<Test>::get(0).expect("c").hoster;
        for a in &m[1..] {
            let mut r = report_of(0, *a, hoster);
            r.coinflip.transcript = None;
            r.coinflip.accused = vec![commit_of(0, m[0], 0, [4; 32])];
            assert_ok!(Datdot::submit_report(
                RuntimeOrigin::signed(*a),
                0,
                signed(r, *a)
            ));
        }
        // Another x, freshly signed, does not open the commit the accusers hold.
        assert_noop!(
            Datdot::publish_reveal(
                RuntimeOrigin::signed(m[0]),
                0,
                reveal_of(0, m[0], 0, [6; 32])
            ),
            Error::<Test>::RevealDoesNotOpenTheCommit
        );
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, reveal(0, m[0], 3)),
            Error::<Test>::NotAccused
        );
        assert_ok!(Datdot::publish_reveal(
            RuntimeOrigin::signed(m[0]),
            0,
            reveal(0, m[0], 0)
        ));
        assert!(events().contains(&Event::RevealPublished {
            challenge: 0,
            who: m[0],
            round: 0
        }));
        // Reveals are taken until one report window after the deadline (12 + 5).
        run_to(18);
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[0]), 0, reveal(0, m[0], 1)),
            Error::<Test>::TooLate
        );
    });
}

#[test]
fn too_few_attestors_skips_a_period() {
    new_test_ext().execute_with(|| {
        register_hosters(1, 1);
        register_attestors(2);
        assert_ok!(publish(PUBLISHER, 1, 1));
        assert_ok!(Datdot::confirm_hosting(RuntimeOrigin::signed(10), 0));
        run_to(2);
        assert!(!Challenges::<Test>::contains_key(0));
        assert!(events().contains(&Event::ChallengeSkipped {
            contract: 0,
            eligible: 2
        }));
        assert_ok!(Datdot::register(
            RuntimeOrigin::signed(ATTESTORS[2]),
            Role::Attestor,
            ATTESTOR_STAKE,
            endpoint(ATTESTORS[2]),
            0
        ));
        run_to(22);
        assert!(Challenges::<Test>::contains_key(0));
    });
}

#[test]
fn storage_is_bounded() {
    new_test_ext().execute_with(|| {
        use frame::traits::StorageInfoTrait;
        for info in crate::Pallet::<Test>::storage_info() {
            assert!(
                info.max_size.is_some(),
                "{:?} is unbounded",
                info.storage_name
            );
        }
        // History keeps the last MAX_HISTORY verdicts.
        let (_, hoster) = world(40);
        for id in 0..(MAX_HISTORY as u64 + 3) {
            run_to(2 + 20 * id + 5);
            for a in committee(id) {
                assert_ok!(submit(id, a, good_metrics()));
            }
        }
        let h = HosterHistory::<Test>::get(hoster);
        assert_eq!(h.len() as u32, MAX_HISTORY);
        assert_eq!(h[0].challenge, 3, "oldest dropped first");
        // A full agenda page opens another page of the same block.
        let at = System::block_number() + 100;
        for i in 0..(MAX_TASKS_PER_BLOCK as u64 + 1) {
            crate::Pallet::<Test>::schedule(at, AgendaTask::Prune(1000 + i));
        }
        assert_eq!(crate::AgendaPages::<Test>::get(at), 2);
        assert_eq!(
            crate::Agenda::<Test>::get(at, 0).len() as u32,
            MAX_TASKS_PER_BLOCK
        );
        assert_eq!(crate::Agenda::<Test>::get(at, 1).len(), 1);
    });
}

/// Far more work comes due in one block than a block runs (many contracts' challenges
/// falling together, or a flood): the old agenda slipped a task 16 blocks and then
/// dropped it, and a dropped `Challenge` froze its contract for good. Now every task
/// runs, in order, within the agenda's weight share of each block.
#[test]
fn flooded_agenda_never_drops_a_contracts_challenge() {
    new_test_ext().execute_with(|| {
        register_hosters(3, 2);
        register_attestors(5);
        assert_ok!(publish(PUBLISHER, 1, 4));
        let c = Contracts::<Test>::get(0).expect("contract 0");
        let at = System::block_number() + 1;
        let flood = 17 * MAX_TASKS_PER_BLOCK as u64;
        for i in 0..flood {
            crate::Pallet::<Test>::schedule(at, AgendaTask::Prune(1000 + i));
        }
        // Confirming schedules the contract's first challenge behind the flood.
        assert_ok!(Datdot::confirm_hosting(RuntimeOrigin::signed(c.hoster), 0));
        let per_block = u64::from(crate::Pallet::<Test>::agenda_tasks_per_block());
        assert!(per_block < flood / 4, "the flood is several blocks' work");
        let mut left = flood + 1;
        while left > 0 {
            let b = System::block_number() + 1;
            System::set_block_number(b);
            let w = Datdot::on_initialize(b);
            assert!(
                w.all_lte(crate::Pallet::<Test>::agenda_budget() * 2),
                "on_initialize stays within its share (plus its reads and writes): {w:?}"
            );
            let pending: u64 = (0..crate::AgendaPages::<Test>::get(at))
                .map(|p| crate::Agenda::<Test>::get(at, p).len() as u64)
                .sum();
            assert!(
                left - pending <= per_block,
                "a block ran more than its bound"
            );
            left = pending;
        }
        assert_eq!(
            System::block_number(),
            at - 1 + (flood + 1).div_ceil(per_block)
        );
        assert!(
            Challenges::<Test>::contains_key(0),
            "the challenge ran, late, not dropped"
        );
        assert!(crate::AgendaPages::<Test>::get(at) == 0, "pages cleaned up");
        // The work that came due meanwhile (the contract's confirmation timeout) runs by
        // the next block; then the agenda has caught up and runs on time again.
        run_to(System::block_number() + 1);
        assert_eq!(
            crate::AgendaCursor::<Test>::get(),
            (System::block_number() + 1, 0)
        );
    });
}

/// Publishing creates work from nothing (a confirmation timeout per replica, all in one
/// block): it is refused when that block already holds what a block runs, or while due
/// work waits, so a publisher cannot pile up the agenda.
#[test]
fn publish_refused_while_the_agenda_is_full() {
    new_test_ext().execute_with(|| {
        register_hosters(3, 2);
        register_attestors(5);
        let at = System::block_number() + 5 + 1; // ConfirmWindow + 1
        let room = u64::from(crate::Pallet::<Test>::agenda_tasks_per_block());
        for i in 0..room {
            crate::Pallet::<Test>::schedule(at, AgendaTask::Prune(1000 + i));
        }
        assert_noop!(publish(PUBLISHER, 1, 4), Error::<Test>::AgendaFull);
        // Next block: the timeouts land one block later, with room.
        run_to(System::block_number() + 1);
        assert_ok!(publish(PUBLISHER, 1, 4));
        // Due work waiting (more than a block runs, all due now): refused until it ran.
        let now = System::block_number();
        for i in 0..(room + 1) {
            crate::Pallet::<Test>::schedule(now + 1, AgendaTask::Prune(5000 + i));
        }
        run_to(now + 1);
        assert_noop!(publish(PUBLISHER, 1, 4), Error::<Test>::AgendaFull);
        run_to(now + 2);
        assert_ok!(publish(PUBLISHER, 1, 4));
    });
}

#[test]
fn session_id_is_the_documented_hash() {
    let id: ChallengeId = 0x0102;
    let chain = [7; 32];
    let mut input = b"datdot/v1/session".to_vec();
    input.extend_from_slice(&chain);
    input.extend_from_slice(&id.to_le_bytes());
    assert_eq!(
        crate::session_id(&chain, id),
        datdot_protocol::hash::blake2b256(&[&input])
    );
    assert_ne!(crate::session_id(&chain, 1), crate::session_id(&chain, 2));
    assert_ne!(crate::session_id(&chain, 1), crate::session_id(&[8; 32], 1));
    new_test_ext().execute_with(|| {
        // The mock genesis: `frame_system`'s `[69; 32]` placeholder hash, a zero salt.
        let mock = datdot_protocol::identity::chain_id(&[69; 32], &[0; 32]);
        assert_eq!(crate::Pallet::<Test>::chain_id(), mock);
        assert_eq!(session_id(id), crate::session_id(&mock, id));
        crate::ChainSalt::<Test>::put([1; 32]);
        assert_ne!(
            crate::Pallet::<Test>::chain_id(),
            mock,
            "the salt is part of it"
        );
    });
}

/// A member too late to audit through its own trouble (a restart, a late event) reports
/// "not audited". That report says nothing about the hoster: it is left out of the
/// median and the quorum, never an outlier, not paid and not penalised. With two audits
/// beside it the hoster passes on them; with only one audit the challenge is
/// inconclusive — never a failure. (Before, the late member audited in what was left of
/// the window and reported what a cut-short audit measured, which counted against the
/// hoster.)
#[test]
fn a_member_that_could_not_audit_never_counts_against_the_hoster() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(4);
        let not_audited = || MetricSummary::empty(datdot_protocol::metrics::Outcome::NotAudited);
        // Challenge 0: two audits and one "not audited".
        run_to(7);
        let m = committee(0);
        assert_ok!(submit(0, m[0], good_metrics()));
        assert_ok!(submit(0, m[1], good_metrics()));
        assert_ok!(submit(0, m[2], not_audited()));
        let ch = Challenges::<Test>::get(0).expect("settled");
        assert_eq!(ch.verdict, Some(Verdict::Pass));
        assert_eq!(
            free(hoster),
            FUNDS - HOSTER_STAKE + PRICE,
            "the hoster is paid"
        );
        assert_eq!(free(m[2]), FUNDS - ATTESTOR_STAKE, "not audited: not paid");
        assert_eq!(stake(m[2]), ATTESTOR_STAKE, "nor penalised");
        assert!(!events().iter().any(|e| matches!(
            e,
            Event::OutlierFlagged { attestor, .. } if *attestor == m[2]
        )));
        // Challenge 1: one audit, two members that could not: too few audits to judge.
        run_to(22 + 5);
        let m = committee(1);
        assert_ok!(submit(1, m[0], good_metrics()));
        assert_ok!(submit(1, m[1], not_audited()));
        assert_ok!(submit(1, m[2], not_audited()));
        let ch = Challenges::<Test>::get(1).expect("settled");
        assert_eq!(ch.verdict, Some(Verdict::Inconclusive));
        let p = Participants::<Test>::get(hoster).expect("registered");
        assert_eq!(
            (p.failures, p.status),
            (0, Status::Active),
            "no failure counted"
        );
        assert_eq!(stake(hoster), HOSTER_STAKE);
    });
}

/// A block starts at most `max_starts_per_block` challenges (as many as blocks can take
/// the reports of); the rest wait for the next block, in order, none dropped. Before the
/// cap the agenda started every due challenge its weight share allowed (about 16 a
/// block at 2,000 attestors, 160 reports due in the same window), and `datdot-sim
/// network` at 10,000 hosters saw honest reports pass their deadline.
#[test]
fn a_block_starts_no_more_challenges_than_it_can_take_the_reports_of() {
    new_test_ext().execute_with(|| {
        let k = Datdot::max_starts_per_block();
        // From the mock runtime's weights (the dev runtime's is in DESIGN §15).
        assert!((1..64).contains(&k), "{k}");
        run_to(5);
        for c in 0..u64::from(k) + 3 {
            Datdot::schedule(6, AgendaTask::Challenge(1000 + c));
        }
        assert_eq!(Datdot::agenda_len(7), 0);
        run_to(6);
        assert_eq!(Datdot::agenda_len(7), 3, "three over the cap wait a block");
        run_to(7);
        assert_eq!(Datdot::agenda_len(8), 0, "and start then");
    });
}
