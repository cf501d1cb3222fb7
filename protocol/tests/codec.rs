//! Property tests of every top-level wire type: round trips, and rejection of
//! truncated, trailing, oversized and random input (never a panic).

use datdot_protocol::codec::{DecodeError, Message, from_bytes, to_bytes};
use datdot_protocol::coinflip::{
    ConfirmKind, EchoEntry, Msg, SignedCommit, SignedConfirm, SignedReveal, Transcript,
};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::identity::{Keypair, PublicKey, Signature};
use datdot_protocol::metrics::{Failure, FailureKind, MetricSummary, Outcome};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::report::{CoinFlipRecord, Report};
use datdot_protocol::tree::{BlockProof, SignedTreeRoot, TreeNode};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(|s| Keypair::from_seed(&s).public())
}
fn sig() -> impl Strategy<Value = Signature> {
    prop::collection::vec(any::<u8>(), 64).prop_map(|v| Signature(v.try_into().expect("64 bytes")))
}
fn commit() -> impl Strategy<Value = SignedCommit> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        key(),
        any::<[u8; 32]>(),
        sig(),
    )
        .prop_map(|(session, round, signer, y, sig)| SignedCommit {
            session,
            round,
            signer,
            y,
            sig,
        })
}
fn reveal() -> impl Strategy<Value = SignedReveal> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        key(),
        any::<[u8; 32]>(),
        sig(),
    )
        .prop_map(|(session, round, signer, x, sig)| SignedReveal {
            session,
            round,
            signer,
            x,
            sig,
        })
}
fn confirm() -> impl Strategy<Value = SignedConfirm> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        key(),
        sig(),
    )
        .prop_map(
            |(ping, session, round, commits_digest, value, signer, sig)| SignedConfirm {
                kind: if ping {
                    ConfirmKind::Ping
                } else {
                    ConfirmKind::Pong
                },
                session,
                round,
                commits_digest,
                value,
                signer,
                sig,
            },
        )
}
fn receipt() -> impl Strategy<Value = SignedReceipt> {
    (
        any::<[u8; 32]>(),
        key(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        prop::collection::vec((any::<u64>(), any::<[u8; 32]>()), 0..20),
        sig(),
    )
        .prop_map(|(chain, hoster, feed, remote, seq, e, sig)| SignedReceipt {
            chain,
            hoster,
            feed,
            remote,
            seq,
            entries: e
                .into_iter()
                .map(|(index, hash)| ReceiptEntry { index, hash })
                .collect(),
            sig,
        })
}
fn node() -> impl Strategy<Value = TreeNode> {
    (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(index, size, hash)| TreeNode {
        index,
        size,
        hash,
    })
}
fn block_proof() -> impl Strategy<Value = BlockProof> {
    (
        any::<u64>(),
        node(),
        prop::collection::vec(node(), 0..8),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(node(), 0..8),
        sig(),
    )
        .prop_map(
            |(index, leaf, siblings, length, fork, roots, signature)| BlockProof {
                index,
                leaf,
                siblings,
                root: SignedTreeRoot {
                    length,
                    fork,
                    roots,
                    signature,
                },
            },
        )
}
fn transcript() -> impl Strategy<Value = Transcript> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        prop::collection::vec(commit(), 0..4),
        prop::collection::vec(reveal(), 0..4),
    )
        .prop_map(|(session, round, commits, reveals)| Transcript {
            session,
            round,
            commits,
            reveals,
        })
}
fn fraud() -> impl Strategy<Value = FraudProof> {
    prop_oneof![
        (commit(), commit()).prop_map(|(a, b)| FraudProof::Equivocation { a, b }),
        (commit(), reveal())
            .prop_map(|(commit, reveal)| FraudProof::InvalidReveal { commit, reveal }),
        (transcript(), confirm())
            .prop_map(|(transcript, claim)| FraudProof::Divergent { transcript, claim }),
        (receipt(), any::<u32>(), block_proof()).prop_map(|(receipt, entry, proof)| {
            FraudProof::BadData {
                receipt,
                entry,
                proof,
            }
        }),
    ]
}
fn msg() -> impl Strategy<Value = Msg> {
    let echo = (
        any::<[u8; 32]>(),
        any::<u32>(),
        prop::collection::btree_map(any::<u16>(), (any::<[u8; 32]>(), sig()), 0..6),
        any::<bool>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(session, round, m, full, digest)| {
            let members: Vec<u16> = m.keys().copied().filter(|&k| k < 256).collect();
            let commits = if full {
                members
                    .iter()
                    .map(|k| EchoEntry {
                        member: *k,
                        y: m[k].0,
                        sig: m[k].1,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Msg::Echo {
                session,
                round,
                members,
                digest,
                commits,
            }
        });
    prop_oneof![
        commit().prop_map(Msg::Commit),
        echo,
        reveal().prop_map(Msg::Reveal),
        (
            any::<[u8; 32]>(),
            any::<u32>(),
            prop::collection::vec(any::<u16>(), 0..10)
        )
            .prop_map(|(session, round, missing)| Msg::RevealRequest {
                session,
                round,
                missing
            }),
        any::<[u8; 32]>().prop_map(|session| Msg::ProofRequest { session }),
        confirm().prop_map(Msg::Confirm),
        fraud().prop_map(|p| Msg::Fraud(Box::new(p))),
    ]
}
fn summary() -> impl Strategy<Value = MetricSummary> {
    (1u32..1000, any::<u64>(), 0u64..1 << 40).prop_map(|(requests, bytes, lat)| {
        let mut m = MetricSummary::empty(Outcome::Completed);
        m.requests = requests;
        m.ok_blocks = requests / 2;
        m.lacks_data = requests / 4;
        m.bytes_received = bytes;
        m.latency_p50_us = lat;
        m.latency_p90_us = lat;
        m.latency_p99_us = lat;
        m.latency_max_us = lat;
        m
    })
}
fn report() -> impl Strategy<Value = Report> {
    (
        (any::<[u8; 32]>(), any::<u64>()),
        (key(), key()),
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u64>(), 0..40),
        any::<[u8; 32]>(),
        prop::collection::vec(receipt(), 0..3),
        summary(),
        prop::collection::vec((any::<u64>(), 0u8..5), 0..5),
        (
            any::<u32>(),
            prop::option::of(transcript()),
            any::<[u8; 32]>(),
            prop::collection::vec(commit(), 0..3),
        ),
        sig(),
    )
        .prop_map(
            |(
                (chain, challenge),
                (attestor, hoster),
                feed,
                sampled,
                received_root,
                receipts,
                metrics,
                f,
                (round, transcript, own_secret, accused),
                sig,
            )| Report {
                chain,
                challenge,
                attestor,
                hoster,
                feed,
                sampled,
                received_root,
                receipts,
                metrics,
                failures: f
                    .into_iter()
                    .map(|(block_index, k)| Failure {
                        block_index,
                        kind: FailureKind::from_u8(k).expect("0..5 are kinds"),
                    })
                    .collect(),
                coinflip: CoinFlipRecord {
                    round,
                    transcript,
                    own_secret,
                    accused,
                },
                sig,
            },
        )
}

/// Round trip, then every strict prefix, a trailing byte, and an oversized buffer.
fn strict<T: Message + PartialEq + std::fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = to_bytes(v);
    prop_assert!(
        bytes.len() <= T::MAX_SIZE,
        "encoding of {} bytes exceeds MAX_SIZE",
        bytes.len()
    );
    let back = from_bytes::<T>(&bytes);
    prop_assert_eq!(back.as_ref(), Ok(v));
    for cut in 0..bytes.len() {
        prop_assert!(
            from_bytes::<T>(&bytes[..cut]).is_err(),
            "prefix of {} bytes accepted",
            cut
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    prop_assert_eq!(from_bytes::<T>(&trailing), Err(DecodeError::Trailing(1)));
    let mut big = bytes;
    big.resize(T::MAX_SIZE + 1, 0);
    let oversized = matches!(from_bytes::<T>(&big), Err(DecodeError::Oversized { .. }));
    prop_assert!(oversized, "oversized input not rejected as such");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn coinflip_messages(m in msg()) { strict(&m)?; }

    #[test]
    fn fraud_proofs(p in fraud()) { strict(&p)?; }

    #[test]
    fn receipts(r in receipt()) { strict(&r)?; }

    #[test]
    fn reports(r in report()) { strict(&r)?; }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), tag in any::<u8>()) {
        let mut b = bytes;
        if b.len() >= 2 { b[0] = 1; b[1] = tag; }
        let _ = from_bytes::<Msg>(&b);
        let _ = from_bytes::<FraudProof>(&b);
        let _ = from_bytes::<SignedReceipt>(&b);
        let _ = from_bytes::<Report>(&b);
        let _ = from_bytes::<BlockProof>(&b);
    }
}

fn ten_member_transcript() -> Transcript {
    let ks: Vec<Keypair> = (0..10u8)
        .map(|i| Keypair::from_seed(&[i + 10; 32]))
        .collect();
    Transcript {
        session: [1; 32],
        round: 0,
        commits: ks
            .iter()
            .map(|k| SignedCommit::sign(k, [1; 32], 0, [2; 32]))
            .collect(),
        reveals: ks
            .iter()
            .map(|k| SignedReveal::sign(k, [1; 32], 0, [3; 32]))
            .collect(),
    }
}

#[test]
fn typical_report_size_matches_the_documented_figure() {
    let kp = Keypair::from_seed(&[1; 32]);
    let hoster = Keypair::from_seed(&[2; 32]);
    let entries = (0..32)
        .map(|i| ReceiptEntry {
            index: i,
            hash: [3; 32],
        })
        .collect();
    let receipt = SignedReceipt::sign(&hoster, [7; 32], [4; 32], [5; 32], 0, entries);
    let mut metrics = MetricSummary::empty(Outcome::Completed);
    metrics.requests = 32;
    metrics.ok_blocks = 32;
    let r = Report {
        chain: [7; 32],
        challenge: 1,
        attestor: kp.public(),
        hoster: hoster.public(),
        feed: [4; 32],
        sampled: (0..32).collect(),
        received_root: [0; 32],
        receipts: vec![receipt],
        metrics,
        failures: vec![],
        coinflip: CoinFlipRecord {
            round: 0,
            transcript: Some(ten_member_transcript()),
            own_secret: [6; 32],
            accused: vec![],
        },
        sig: Signature([0; 64]),
    }
    .sign(&kp);
    assert_eq!(
        to_bytes(&r).len(),
        5_452,
        "update report.rs docs and DESIGN.md"
    );
}
