//! Reports tied to audits, withholding accusations tied to real rounds, and challenge
//! start times nobody can read off the agenda (issue 12, items 8–10). Each test is named
//! for the attack it stops.

use frame::testing_prelude::*;

use crate::mock::*;
use crate::types::*;
use crate::{Challenges, Error, Event};
use datdot_protocol::coinflip::{SignedCommit, SignedReveal, Transcript};
use datdot_protocol::identity::Ed25519Verifier;
use datdot_protocol::report::Report;
use datdot_protocol::schedule::sample;

fn committee(id: ChallengeId) -> Vec<u64> {
    Challenges::<Test>::get(id)
        .expect("challenge")
        .attestors
        .to_vec()
}

use crate::mock::send_report as send;

fn feed_length() -> u64 {
    Challenges::<Test>::get(0).expect("c").feed_length
}

/// `who`'s report for challenge 0 with transcript `t` (of a subset, or another round):
/// its sample under `t`'s `R` and the hoster's receipts for it.
fn tied_to(t: &Transcript, who: u64, hoster: u64) -> Report {
    let r = t.verify(&Ed25519Verifier).expect("a valid transcript");
    let mut rep = report_of(0, who, hoster);
    rep.coinflip.round = t.round;
    rep.sampled = sample(&r, &own_secret(0, who), feed_length(), SAMPLES);
    rep.receipts = receipts_for(hoster, who, &rep.sampled);
    rep.coinflip.transcript = Some(t.clone());
    rep
}

/// A member that audits one block instead of the chain's `AuditSamples` — the right
/// block for its `R` and secret, with the hoster's receipt for it — is refused (the old
/// code took `k` from the report, so a one-block audit passed every check).
#[test]
fn a_one_block_audit_is_refused() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let t = transcript(0, &m);
        let r = t.verify(&Ed25519Verifier).expect("a valid transcript");
        let mut lazy = report_of(0, m[1], hoster);
        lazy.sampled = sample(&r, &own_secret(0, m[1]), feed_length(), 1);
        lazy.receipts = receipts_for(hoster, m[1], &lazy.sampled);
        lazy.metrics.requests = 1;
        lazy.metrics.ok_blocks = 1;
        assert_noop!(send(0, m[1], lazy), Error::<Test>::NotTheScheduledSample);
        assert_ok!(send(0, m[1], report_of(0, m[1], hoster)));
    });
}

/// Only the committee's last report settles, so only it is charged for a settlement;
/// every other report refunds it. The old code charged every report for one (≈ 10 ms of
/// a block's weight at `MAX_COMMITTEE`), so a block took about 140 reports and
/// `datdot-sim network` at 10,000 hosters saw honest reports miss their deadline.
#[test]
fn only_the_settling_report_pays_for_a_settlement() {
    use crate::weights::WeightInfo;
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let settlement = <() as WeightInfo>::settlement();
        assert!(settlement.ref_time() > 0);
        for (i, who) in m.iter().enumerate() {
            let bytes = signed(report_of(0, *who, hoster), *who);
            let declared = <() as WeightInfo>::submit_report(bytes.len() as u32);
            let post = Datdot::submit_report(RuntimeOrigin::signed(*who), 0, bytes)
                .expect("an honest report is taken");
            let settles = i + 1 == m.len();
            assert_eq!(
                Challenges::<Test>::get(0).expect("c").verdict.is_some(),
                settles
            );
            let charged = if settles {
                declared
            } else {
                declared - settlement
            };
            assert_eq!(
                post.actual_weight,
                Some(charged),
                "report {i} of {}",
                m.len()
            );
        }
    });
}

/// Members `accusers` report challenge 0 without a transcript, accusing `accused` of
/// withholding in round 1 with its signed commit to `[4; 32]`.
fn accuse_in_round_1(accusers: &[u64], accused: u64, hoster: u64) {
    for a in accusers {
        let mut r = report_of(0, *a, hoster);
        r.coinflip.round = 1;
        r.coinflip.transcript = None;
        r.coinflip.accused = vec![commit_of(0, accused, 1, [4; 32])];
        assert_ok!(send(0, *a, r));
    }
}

fn paid(who: u64) -> u64 {
    free(who) - (FUNDS - ATTESTOR_STAKE)
}

/// A member that skips the coin flip and the audit and copies the median of the reports
/// already on chain is not paid (the old code paid every report that was not an outlier).
/// Its report still counts (it cannot be told from an honest member whose flip failed),
/// so it moves nothing: it copies what is there.
#[test]
fn a_copying_attestor_is_unpaid() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        assert_ok!(send(0, m[0], report_of(0, m[0], hoster)));
        assert_ok!(send(0, m[1], report_of(0, m[1], hoster)));
        // The copier: the others' metrics, no transcript, no secret, a made-up sample.
        let mut copy = report_of(0, m[2], hoster);
        copy.coinflip.transcript = None;
        copy.coinflip.own_secret = [0; 32];
        copy.sampled = (0..u64::from(SAMPLES)).collect();
        copy.receipts = receipts_for(hoster, m[2], &copy.sampled);
        assert_ok!(send(0, m[2], copy));
        let ch = Challenges::<Test>::get(0).expect("c");
        assert_eq!(ch.verdict, Some(Verdict::Pass));
        assert_eq!(ch.untied.to_vec(), vec![(2, None)]);
        assert_eq!((paid(m[0]), paid(m[1]), paid(m[2])), (REWARD, REWARD, 0));
        assert_eq!(stake(m[2]), ATTESTOR_STAKE, "not a penalty: unpaid");
    });
}

/// A copier that did take part in the flip (so it holds a valid transcript) cannot pass
/// off another member's sample, nor open another member's secret: the chain recomputes
/// the sample from `R` and the opened secret, and the secret from the reveal.
#[test]
fn a_copied_sample_or_secret_is_refused() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let theirs = report_of(0, m[0], hoster);
        let mut r = report_of(0, m[1], hoster);
        assert_ne!(r.sampled, theirs.sampled);
        r.sampled = theirs.sampled.clone();
        r.receipts = receipts_for(hoster, m[1], &r.sampled);
        assert_noop!(send(0, m[1], r), Error::<Test>::NotTheScheduledSample);
        let mut r = report_of(0, m[1], hoster);
        r.coinflip.own_secret = theirs.coinflip.own_secret;
        r.sampled = theirs.sampled.clone();
        r.receipts = receipts_for(hoster, m[1], &r.sampled);
        assert_noop!(send(0, m[1], r), Error::<Test>::BadTranscript);
        // A sample of its own choosing with the right secret: refused too.
        let mut r = report_of(0, m[1], hoster);
        r.sampled = (0..u64::from(SAMPLES)).collect();
        r.receipts = receipts_for(hoster, m[1], &r.sampled);
        assert_ne!(r.sampled, report_of(0, m[1], hoster).sampled);
        assert_noop!(send(0, m[1], r), Error::<Test>::NotTheScheduledSample);
        assert_ok!(send(0, m[1], report_of(0, m[1], hoster)));
    });
}

/// Transcripts that do not verify, belong to another challenge or round, or lack the
/// reporter are refused; one that leaves out a member nobody proved malicious (a subset
/// drawing an `R` of its choosing) is counted but not paid.
#[test]
fn a_forged_or_partial_transcript_earns_nothing() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let base = || report_of(0, m[0], hoster);
        let mut r = base();
        r.coinflip.transcript.as_mut().expect("t").reveals[1].x = [7; 32];
        assert_noop!(send(0, m[0], r), Error::<Test>::BadTranscript);
        let mut r = base();
        r.coinflip.round = 1;
        assert_noop!(send(0, m[0], r), Error::<Test>::BadTranscript);
        let mut r = base();
        r.coinflip.transcript = Some(transcript(1, &m));
        assert_noop!(send(0, m[0], r), Error::<Test>::BadTranscript);
        let mut r = base();
        r.coinflip.transcript = Some(transcript(0, &m[1..]));
        assert_noop!(send(0, m[0], r), Error::<Test>::BadTranscript);
        let outsider = ATTESTORS
            .into_iter()
            .find(|a| !m.contains(a))
            .expect("5 > 3");
        let mut r = base();
        r.coinflip.transcript = Some(transcript(0, &[m[0], m[1], outsider]));
        assert_noop!(send(0, m[0], r), Error::<Test>::BadTranscript);

        // m[0] and m[1] flip without m[2]: checked-looking, but incomplete.
        let pair = transcript(0, &m[..2]);
        for a in &m[..2] {
            assert_ok!(send(0, *a, tied_to(&pair, *a, hoster)));
        }
        assert_ok!(send(0, m[2], report_of(0, m[2], hoster)));
        let ch = Challenges::<Test>::get(0).expect("c");
        assert_eq!(
            ch.untied.to_vec(),
            vec![(0, Some(1 << 2)), (1, Some(1 << 2))]
        );
        assert_eq!((paid(m[0]), paid(m[1]), paid(m[2])), (0, 0, REWARD));
    });
}

/// A member the chain convicted of fraud may be missing from the transcript (the others
/// excluded it and flipped again): the rest are checked and paid.
#[test]
fn a_transcript_without_a_convicted_member_is_checked() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        let session = session_id(0);
        let e = datdot_protocol::fraud::FraudProof::Equivocation {
            a: SignedCommit::sign(&kp(m[2]), session, 0, [1; 32]),
            b: SignedCommit::sign(&kp(m[2]), session, 0, [2; 32]),
        };
        let bytes = datdot_protocol::codec::to_bytes(&e)
            .try_into()
            .expect("small");
        assert_ok!(Datdot::submit_fraud_proof(
            RuntimeOrigin::signed(m[0]),
            0,
            bytes
        ));
        run_to(7);
        let pair = transcript(0, &m[..2]);
        for a in &m[..2] {
            assert_ok!(send(0, *a, tied_to(&pair, *a, hoster)));
        }
        run_to(13);
        let ch = Challenges::<Test>::get(0).expect("c");
        assert_eq!(ch.verdict, Some(Verdict::Pass));
        assert_eq!(
            paid(m[1]),
            REWARD,
            "m[2]'s absence is explained by its conviction"
        );
    });
}

/// The withholder publishes a freshly signed reveal of another `x` for the accused round:
/// it used to clear the accusation (the chain never compared it with the commit); now
/// the penalty stands.
#[test]
fn a_withholder_cannot_clear_an_accusation_with_a_fresh_reveal() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        let session = session_id(0);
        run_to(7);
        accuse_in_round_1(&m[..2], m[2], hoster);
        let mut own = report_of(0, m[2], hoster);
        own.coinflip.transcript = None;
        assert_ok!(send(0, m[2], own));
        let fresh = SignedReveal::sign(&kp(m[2]), session, 1, [9; 32]);
        let bytes =
            datdot_protocol::codec::to_bytes(&datdot_protocol::coinflip::Msg::Reveal(fresh))
                .try_into()
                .expect("small");
        assert_noop!(
            Datdot::publish_reveal(RuntimeOrigin::signed(m[2]), 0, bytes),
            Error::<Test>::RevealDoesNotOpenTheCommit
        );
        run_to(18);
        assert_eq!(stake(m[2]), ATTESTOR_STAKE - 40);
        assert!(events().contains(&Event::Penalised {
            who: m[2],
            amount: 40,
            reason: crate::PenaltyReason::Withholding
        }));
    });
}

/// An accusation made in the last report block can still be answered: the accused has
/// one more report window to publish the reveal that opens its commit. (The old code
/// refused reveals, and judged accusations, from the block after the report deadline,
/// so an honest member accused in the last block was penalised.)
#[test]
fn an_accusation_in_the_last_report_block_can_still_be_answered() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        let deadline = Challenges::<Test>::get(0).expect("c").report_deadline;
        run_to(7);
        assert_ok!(send(0, m[2], report_of(0, m[2], hoster)));
        run_to(deadline);
        accuse_in_round_1(&m[..2], m[2], hoster);
        run_to(deadline + 1);
        let reveal = SignedReveal::sign(&kp(m[2]), session_id(0), 1, [4; 32]);
        let bytes =
            datdot_protocol::codec::to_bytes(&datdot_protocol::coinflip::Msg::Reveal(reveal))
                .try_into()
                .expect("small");
        assert_ok!(Datdot::publish_reveal(
            RuntimeOrigin::signed(m[2]),
            0,
            bytes
        ));
        run_to(deadline + 1 + 5);
        assert_eq!(stake(m[2]), ATTESTOR_STAKE);
        let penalised = |e: &Event<Test>| matches!(e, Event::Penalised { who, .. } if *who == m[2]);
        assert!(!events().iter().any(penalised));
    });
}

/// Accusations about rounds that never ran (no commit of the accused for that round),
/// with forged commits, or with a commit of another round than the report's, are not
/// recorded: nobody can fill the list or frame a member with an invented round.
#[test]
fn accusations_about_invented_rounds_do_not_count() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        let session = session_id(0);
        run_to(7);
        let mut forged = SignedCommit::sign(&kp(m[2]), session, 5, [4; 32]);
        forged.y = [5; 32];
        let mut r = report_of(0, m[0], hoster);
        r.coinflip.round = 5;
        r.coinflip.transcript = None;
        r.coinflip.accused = vec![
            forged,
            // Another challenge's session.
            SignedCommit::sign(&kp(m[1]), session_id(1), 5, [4; 32]),
            // The accuser's own commit.
            SignedCommit::sign(&kp(m[0]), session, 5, [4; 32]),
        ];
        assert_ok!(send(0, m[0], r));
        assert!(
            Challenges::<Test>::get(0)
                .expect("c")
                .accusations
                .is_empty()
        );
    });
}

/// The next challenge's start used to be a fixed period after the last, so the hoster
/// knew it to the block. Now it is uniform over `period ± jitter`, drawn block by block
/// from chain randomness: the agenda says only "not before".
#[test]
fn next_challenge_start_is_drawn_not_fixed() {
    ChallengeJitter::set(5);
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(40);
        let mut starts = Vec::new();
        for id in 0..30u64 {
            let Some(ch) = Challenges::<Test>::get(id) else {
                break;
            };
            starts.push(ch.start);
            assert_eq!(
                crate::Agenda::<Test>::get(ch.start + 15, 0)
                    .iter()
                    .filter(|t| matches!(t, AgendaTask::ChallengeDraw(_, 10)))
                    .count(),
                1,
                "only the earliest block is on the agenda"
            );
            run_to(ch.end);
            for a in committee(id) {
                assert_ok!(send(id, a, report_of(id, a, hoster)));
            }
            // Run until the next one starts (at most `period + jitter` after this one).
            while !Challenges::<Test>::contains_key(id + 1)
                && System::block_number() < ch.start + 26
            {
                run_to(System::block_number() + 1);
            }
        }
        assert_eq!(starts.len(), 30);
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| (15..=25).contains(g)), "{gaps:?}");
        let mut distinct = gaps.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 5, "{gaps:?}");
    });
    ChallengeJitter::set(0);
}

/// A member that withholds its reveal in round 0 is benched; the others flip round 1
/// without it. Their transcripts leave it out, but a majority of reports accuse it (with
/// its signed round-0 commit), so they are paid and it is penalised. (Before, its
/// silence failed the whole flip: everyone audited with a private R.)
#[test]
fn a_benched_withholder_leaves_the_others_paid_and_is_penalised() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        // Round 1 (round 0 ended offline).
        let pair = transcript_in(0, &m[..2], 1);
        for a in &m[..2] {
            let mut r = tied_to(&pair, *a, hoster);
            r.coinflip.accused = vec![commit_of(0, m[2], 0, [4; 32])];
            assert_ok!(send(0, *a, r));
        }
        let mut own = report_of(0, m[2], hoster);
        own.coinflip.transcript = None;
        assert_ok!(send(0, m[2], own));
        run_to(13);
        assert_eq!((paid(m[0]), paid(m[1]), paid(m[2])), (REWARD, REWARD, 0));
        // Judged when the answer window (one report window) is over.
        run_to(18);
        assert_eq!(stake(m[2]), ATTESTOR_STAKE - 40);
    });
}

/// A member that took part in the flip (so its transcript, secret and sample are right)
/// but never downloaded holds no receipt: the verified blocks it claims are not covered.
/// Before, the report was accepted and paid.
#[test]
fn a_report_without_its_own_receipts_is_refused() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let mut lazy = report_of(0, m[1], hoster);
        lazy.receipts = vec![];
        assert_noop!(send(0, m[1], lazy), Error::<Test>::UncoveredBlocks);
        // Covering only half: half the claimed blocks are not covered.
        let mut half = report_of(0, m[1], hoster);
        let firsts = half.sampled[..half.sampled.len() / 2].to_vec();
        half.receipts = receipts_for(hoster, m[1], &firsts);
        assert_noop!(send(0, m[1], half), Error::<Test>::UncoveredBlocks);
        // Receipts out of sequence or of two connections.
        let mut two = report_of(0, m[1], hoster);
        let mut second = receipts_for(hoster, m[2], &two.sampled[..1]);
        second[0] = datdot_protocol::receipt::SignedReceipt::sign(
            &kp(hoster),
            chain(),
            feed_key(),
            connection(m[2]),
            1,
            second[0].entries.clone(),
        );
        two.receipts.extend(second);
        assert_noop!(send(0, m[1], two), Error::<Test>::UncoveredBlocks);

        // Honest, with half its receipts: counts only what they cover.
        let mut honest = report_of(0, m[1], hoster);
        honest.receipts = receipts_for(hoster, m[1], &firsts);
        assert_eq!(honest.count_only_receipted(), SAMPLES - firsts.len() as u32);
        assert_ok!(send(0, m[1], honest));
    });
}

/// A copier shows another member's receipts. They cover the other member's sample, not
/// its own (the samples come from different secrets), so it can claim almost nothing
/// as verified: its report says the hoster failed, an outlier, and is not paid. The
/// member whose receipts it showed is paid as usual (an earlier version refused the
/// second report with a known connection, which let a copier that saw an honest report
/// in the pool send its receipts first and get the honest one refused).
#[test]
fn another_members_receipts_earn_nothing() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee(0);
        run_to(7);
        let theirs = report_of(0, m[0], hoster);
        let mut copy = report_of(0, m[1], hoster);
        copy.receipts = theirs.receipts.clone();
        let moved = copy.count_only_receipted();
        assert!(
            moved >= SAMPLES - 2,
            "the samples barely overlap: {moved} moved"
        );
        assert_ok!(send(0, m[1], copy));
        assert_ok!(send(0, m[0], theirs));
        assert_ok!(send(0, m[2], report_of(0, m[2], hoster)));
        assert_eq!((paid(m[0]), paid(m[1]), paid(m[2])), (REWARD, 0, REWARD));
    });
}
