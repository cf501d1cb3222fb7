//! submit_fraud_proof: accepted proofs (coin-flip equivocation, bad data) and every
//! rejection.

use datdot_protocol::codec;
use datdot_protocol::coinflip::SignedCommit;
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::tree::build;
use frame::testing_prelude::*;

use crate::mock::*;
use crate::types::*;
use crate::{Challenges, Contracts, Error, Event, Participants};

type ProofBytes = BoundedVec<u8, ConstU32<{ crate::MAX_FRAUD_PROOF_BYTES }>>;

fn bytes(p: &FraudProof) -> ProofBytes {
    codec::to_bytes(p).try_into().expect("below MAX_SIZE")
}

fn equivocation(who: u64, session: [u8; 32]) -> FraudProof {
    FraudProof::Equivocation {
        a: SignedCommit::sign(&kp(who), session, 0, [1; 32]),
        b: SignedCommit::sign(&kp(who), session, 0, [2; 32]),
    }
}

fn bad_data(hoster: u64) -> FraudProof {
    let proof = build::block_proof(&leaves(), 1, 0, |m| feed_sign(&feed_signing_key(), m))
        .expect("block 1");
    let receipt = SignedReceipt::sign(
        &kp(hoster),
        chain(),
        feed_key(),
        [0; 32],
        0,
        vec![ReceiptEntry {
            index: 1,
            hash: [0xee; 32],
        }],
    );
    FraudProof::BadData {
        receipt,
        entry: 0,
        proof,
    }
}

fn committee() -> Vec<u64> {
    Challenges::<Test>::get(0)
        .expect("challenge")
        .attestors
        .to_vec()
}

#[test]
fn equivocation_slashes_the_member_and_rewards_the_submitter() {
    new_test_ext().execute_with(|| {
        world(2);
        let m = committee();
        let proof = bytes(&equivocation(m[0], session_id(0)));
        assert_ok!(Datdot::submit_fraud_proof(
            RuntimeOrigin::signed(2),
            0,
            proof.clone()
        ));
        let slashed = ATTESTOR_STAKE / 2;
        let reward = slashed / 5;
        assert_eq!(stake(m[0]), ATTESTOR_STAKE - slashed);
        assert_eq!(free(2), FUNDS + reward);
        let p = Participants::<Test>::get(m[0]).expect("p");
        assert_eq!((p.status, p.score), (Status::Suspended, 0));
        assert!(events().contains(&Event::FraudProven {
            challenge: 0,
            offender: m[0],
            submitter: 2,
            slashed,
            reward
        }));
        assert_noop!(
            Datdot::submit_fraud_proof(RuntimeOrigin::signed(3), 0, proof),
            Error::<Test>::AlreadyPunished
        );
        // Honest members are untouched.
        assert_eq!(stake(m[1]), ATTESTOR_STAKE);
    });
}

#[test]
fn fraud_proof_rejections() {
    new_test_ext().execute_with(|| {
        world(2);
        let m = committee();
        let outsider = ATTESTORS
            .into_iter()
            .find(|x| !m.contains(x))
            .expect("5 > 3");
        let submit = |who: u64, id, p: ProofBytes| {
            Datdot::submit_fraud_proof(RuntimeOrigin::signed(who), id, p)
        };
        assert_noop!(
            submit(2, 9, bytes(&equivocation(m[0], session_id(9)))),
            Error::<Test>::NoSuchChallenge
        );
        assert_noop!(
            submit(2, 0, b"garbage".to_vec().try_into().expect("small")),
            Error::<Test>::MalformedFraudProof
        );
        let consistent = FraudProof::Equivocation {
            a: SignedCommit::sign(&kp(m[0]), session_id(0), 0, [1; 32]),
            b: SignedCommit::sign(&kp(m[0]), session_id(0), 0, [1; 32]),
        };
        assert_noop!(
            submit(2, 0, bytes(&consistent)),
            Error::<Test>::InvalidFraudProof
        );
        assert_noop!(
            submit(2, 0, bytes(&equivocation(m[0], session_id(1)))),
            Error::<Test>::WrongSession
        );
        assert_noop!(
            submit(2, 0, bytes(&equivocation(outsider, session_id(0)))),
            Error::<Test>::OffenderNotInChallenge
        );
        assert_noop!(
            submit(m[0], 0, bytes(&equivocation(m[0], session_id(0)))),
            Error::<Test>::SelfAccusation
        );
        // Bad data signed by someone who is not this challenge's hoster.
        assert_noop!(
            submit(2, 0, bytes(&bad_data(outsider))),
            Error::<Test>::OffenderNotInChallenge
        );
        // A fraud proof after the fraud window: the challenge is gone.
        run_to(13 + 20);
        assert_noop!(
            submit(2, 0, bytes(&equivocation(m[0], session_id(0)))),
            Error::<Test>::NoSuchChallenge
        );
    });
}

#[test]
fn bad_data_slashes_and_replaces_the_hoster() {
    new_test_ext().execute_with(|| {
        let (contract, hoster) = world(4);
        assert_ok!(Datdot::submit_fraud_proof(RuntimeOrigin::signed(2), 0, bytes(&bad_data(hoster))));
        assert_eq!(stake(hoster), HOSTER_STAKE / 2);
        assert_eq!(free(2), FUNDS + HOSTER_STAKE / 10);
        assert_eq!(Contracts::<Test>::get(contract).map(|c| c.state), Some(ContractState::Ended));
        let replaced = events().into_iter().any(|e| {
            matches!(e, Event::HosterReplaced { contract: c, replacement: Some(_), .. } if c == contract)
        });
        assert!(replaced);
        // The open challenge still settles normally.
        run_to(7);
        for a in committee() {
            assert_ok!(submit(0, a, good_metrics()));
        }
        assert_eq!(Challenges::<Test>::get(0).and_then(|c| c.verdict), Some(Verdict::Pass));
        // ...but the convicted hoster is not paid for it.
        let paid = |e: &Event<Test>| matches!(e, Event::Rewarded { who, .. } if *who == hoster);
        assert!(!events().iter().any(paid));
    });
}

#[test]
fn a_member_convicted_before_settlement_is_not_paid() {
    new_test_ext().execute_with(|| {
        world(2);
        let m = committee();
        assert_ok!(Datdot::submit_fraud_proof(
            RuntimeOrigin::signed(2),
            0,
            bytes(&equivocation(m[0], session_id(0)))
        ));
        run_to(7);
        for a in &m {
            assert_ok!(submit(0, *a, good_metrics()));
        }
        assert_eq!(
            Challenges::<Test>::get(0).and_then(|c| c.verdict),
            Some(Verdict::Pass)
        );
        let rewarded = |x: u64| {
            events()
                .iter()
                .any(|e| matches!(e, Event::Rewarded { who, .. } if *who == x))
        };
        assert!(!rewarded(m[0]), "the equivocator is not paid");
        assert!(rewarded(m[1]) && rewarded(m[2]), "the honest members are");
    });
}

/// The feed's author signs a second tree whose block 1 differs from the published one,
/// reads block 1 from the hoster (any reader gets a signed receipt for what it was
/// served: the published block) and "proves" the receipted hash wrong against its fork.
/// The proof verifies against the feed key; the chain must not slash the hoster for it.
#[test]
fn forked_root_cannot_frame_hoster() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(4);
        let mut forked = blocks();
        forked[1] = vec![0xf0; 100];
        let fork_leaves: Vec<_> = forked
            .iter()
            .enumerate()
            .map(|(i, b)| build::leaf(i as u64, b))
            .collect();
        let proof = build::block_proof(&fork_leaves, 1, 0, |m| feed_sign(&feed_signing_key(), m))
            .expect("block 1 of the fork");
        let honest = SignedReceipt::sign(
            &kp(hoster),
            chain(),
            feed_key(),
            [0; 32],
            0,
            vec![ReceiptEntry {
                index: 1,
                hash: leaves()[1].hash,
            }],
        );
        let framing = FraudProof::BadData {
            receipt: honest,
            entry: 0,
            proof,
        };
        framing
            .verify(&datdot_protocol::identity::Ed25519Verifier)
            .expect("the fork is signed by the feed key: the proof verifies by itself");
        assert_noop!(
            Datdot::submit_fraud_proof(RuntimeOrigin::signed(PUBLISHER), 0, bytes(&framing)),
            Error::<Test>::NotThePublishedTree
        );
        assert_eq!(stake(hoster), HOSTER_STAKE);
    });
}

/// Challenges stay stored for `FraudWindow` after settling, so several of one contract
/// coexist; a bad-data proof names the hoster and the feed, not a challenge. Submitted
/// to each stored challenge it must still convict once.
#[test]
fn one_bad_data_proof_slashes_once_across_stored_challenges() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(4);
        run_to(7);
        for a in committee() {
            assert_ok!(submit(0, a, good_metrics()));
        }
        run_to(22);
        assert!(Challenges::<Test>::contains_key(0) && Challenges::<Test>::contains_key(1));
        let proof = bytes(&bad_data(hoster));
        assert_ok!(Datdot::submit_fraud_proof(
            RuntimeOrigin::signed(2),
            1,
            proof.clone()
        ));
        assert_eq!(stake(hoster), HOSTER_STAKE / 2);
        assert_noop!(
            Datdot::submit_fraud_proof(RuntimeOrigin::signed(3), 0, proof),
            Error::<Test>::AlreadyPunished
        );
        assert_eq!(stake(hoster), HOSTER_STAKE / 2);
        assert_eq!(free(3), FUNDS, "no second reward");
    });
}
