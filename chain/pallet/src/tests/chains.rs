//! Replays across chains and dev-chain resets (issue 12, item 6). A reset dev chain
//! starts its challenge ids from 0 again with the same keys, so before the chain's
//! identity was part of what is signed, what a member or hoster signed on the old chain
//! was evidence on the new one. `OLD` stands for the same chain before a reset (the dev
//! chain's genesis salt makes its identity differ).

use datdot_protocol::codec;
use datdot_protocol::coinflip::SignedCommit;
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::tree::build;
use frame::testing_prelude::*;

use crate::mock::*;
use crate::{Challenges, Error};

const OLD: [u8; 32] = [1; 32];

fn committee() -> Vec<u64> {
    Challenges::<Test>::get(0)
        .expect("challenge")
        .attestors
        .to_vec()
}

fn fraud(who: u64, p: &FraudProof) -> DispatchResult {
    let bytes = codec::to_bytes(p).try_into().expect("below MAX_SIZE");
    Datdot::submit_fraud_proof(RuntimeOrigin::signed(who), 0, bytes)
}

/// An honest member commits once in challenge 0 of the old chain and once in challenge 0
/// of the new one. The two commits are one round's in one session only if the session
/// ignores the chain: the old code took them for an equivocation and slashed half the
/// member's stake.
#[test]
fn commits_from_a_reset_chain_are_no_equivocation_proof() {
    new_test_ext().execute_with(|| {
        world(2);
        let m = committee();
        let old = crate::session_id(&OLD, 0);
        let across = FraudProof::Equivocation {
            a: SignedCommit::sign(&kp(m[0]), old, 0, [1; 32]),
            b: SignedCommit::sign(&kp(m[0]), session_id(0), 0, [2; 32]),
        };
        assert_noop!(fraud(2, &across), Error::<Test>::InvalidFraudProof);
        // Two commits of the old chain's round are the old chain's business.
        let on_old = FraudProof::Equivocation {
            a: SignedCommit::sign(&kp(m[0]), old, 0, [1; 32]),
            b: SignedCommit::sign(&kp(m[0]), old, 0, [2; 32]),
        };
        assert_noop!(fraud(2, &on_old), Error::<Test>::WrongSession);
        assert_eq!(stake(m[0]), ATTESTOR_STAKE);
    });
}

/// A report signed for the old chain's challenge 0 (a copy of one that was accepted
/// there) is refused, and so is a report whose receipts the hoster signed on the old
/// chain.
#[test]
fn a_report_or_receipt_from_a_reset_chain_is_refused() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let m = committee();
        run_to(7);
        let send = |r| Datdot::submit_report(RuntimeOrigin::signed(m[1]), 0, signed(r, m[1]));
        let mut old = report_of(0, m[1], hoster);
        old.chain = OLD;
        for r in &mut old.receipts {
            *r = SignedReceipt::sign(&kp(hoster), OLD, r.feed, r.remote, r.seq, r.entries.clone());
        }
        assert_noop!(send(old), Error::<Test>::WrongChain);
        let mut old_receipts = report_of(0, m[1], hoster);
        for r in &mut old_receipts.receipts {
            *r = SignedReceipt::sign(&kp(hoster), OLD, r.feed, r.remote, r.seq, r.entries.clone());
        }
        assert_noop!(send(old_receipts), Error::<Test>::InvalidReport);
        assert_ok!(send(report_of(0, m[1], hoster)));
    });
}

/// A receipt for bad data the hoster signed on another chain does not slash it here.
#[test]
fn bad_data_signed_for_another_chain_is_refused() {
    new_test_ext().execute_with(|| {
        let (_, hoster) = world(2);
        let proof = build::block_proof(&leaves(), 1, 0, |m| feed_sign(&feed_signing_key(), m))
            .expect("block 1");
        let entries = vec![ReceiptEntry {
            index: 1,
            hash: [0xee; 32],
        }];
        let bad = |chain| FraudProof::BadData {
            receipt: SignedReceipt::sign(
                &kp(hoster),
                chain,
                feed_key(),
                [0; 32],
                0,
                entries.clone(),
            ),
            entry: 0,
            proof: proof.clone(),
        };
        assert_noop!(fraud(2, &bad(OLD)), Error::<Test>::WrongChain);
        assert_eq!(stake(hoster), HOSTER_STAKE);
        assert_ok!(fraud(2, &bad(chain())));
        assert_eq!(stake(hoster), HOSTER_STAKE / 2);
    });
}
