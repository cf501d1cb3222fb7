//! Tests of `tree`: published vectors, cross-checks against the `hypercore` crate,
//! tampering, and codec/verify properties.
//!
//! How proofs are taken from the real crate: `Hypercore::create_proof` with a block
//! request (`nodes: 0`) and an upgrade from 0 to the current length yields
//! `block.nodes` = the uncle path from the leaf up to its covering root,
//! `upgrade.nodes` = every *other* full root, and `upgrade.signature` = the feed's
//! signature over the current tree. The covering root itself, and the leaf node, are
//! not in that proof (the receiver recomputes them), so they are fetched from the crate
//! separately with hash requests (`hash: RequestBlock { index: node, nodes: 0 }`
//! returns the stored node). Every hash we compare against therefore comes from the
//! crate, and the signature was made by the crate over its own tree hash: our
//! verification passing means our formulas equal Hypercore's.

use ed25519_dalek::{Signer, SigningKey};
use hypercore::{HypercoreBuilder, PartialKeypair, Storage};
use hypercore_schema::{RequestBlock, RequestUpgrade};
use proptest::prelude::*;

use super::*;
use crate::codec::{from_bytes, to_bytes};

fn hex(s: &str) -> Hash {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    out
}

fn feed_key(sk: &SigningKey) -> PublicKey {
    PublicKey::from_bytes(sk.verifying_key().as_bytes()).expect("dalek key is valid")
}

/// Deterministic block contents, with 64 KiB blocks and an empty one among them.
fn block(i: u64) -> Vec<u8> {
    let len = match i % 6 {
        0 => 64 * 1024,
        1 => 1,
        2 => 1000 + i as usize,
        3 => 0,
        4 => 64 * 1024 - 1,
        _ => 17,
    };
    (0..len).map(|j| (j as u64 * 31 + i * 7) as u8).collect()
}

// ---------------------------------------------------------------------------------
// Formulas
// ---------------------------------------------------------------------------------

#[test]
fn tree_namespace_is_derived_from_hypercore() {
    let ns = blake2b256(&[b"hypercore"]);
    assert_eq!(blake2b256(&[&ns, &[0]]), TREE_NAMESPACE);
}

#[test]
fn hashes_match_hypercore_crypto_vectors() {
    // From hypercore-crypto's test.js (JS reference implementation).
    let leaf = leaf_hash(b"hello world");
    assert_eq!(
        leaf,
        hex("9f1b578fd57a4df015493d2886aec9600eef913c3bb009768c7f0fb875996308")
    );
    assert_eq!(
        parent_hash(22, &leaf, &leaf),
        hex("3ad0c9b58b771d1b7707e1430f37c23a23dd46e0c7c3ab9c16f79d25f7c36804")
    );
    let roots = [
        TreeNode {
            index: 3,
            size: 11,
            hash: [0; 32],
        },
        TreeNode {
            index: 9,
            size: 2,
            hash: [0; 32],
        },
    ];
    assert_eq!(
        tree_hash(&roots),
        hex("0e576a56b478cddb6ffebab8c494532b6de009466b2e9f7af9143fc54b9eaa36")
    );
}

#[test]
fn flat_tree_helpers() {
    let roots = |n| flat::full_roots(n).collect::<Vec<_>>();
    assert_eq!(roots(0), Vec::<u64>::new());
    assert_eq!(roots(1), [0]);
    assert_eq!(roots(2), [1]);
    assert_eq!(roots(3), [1, 4]);
    assert_eq!(roots(37), [31, 67, 72]);
    assert_eq!(roots(MAX_LENGTH), [MAX_LENGTH - 1]);
    assert_eq!(roots(MAX_LENGTH - 1).len(), 62);
    assert_eq!(
        (flat::parent(0), flat::parent(2), flat::parent(1)),
        (1, 1, 3)
    );
    assert_eq!((flat::parent(5), flat::parent(11)), (3, 7));
    assert_eq!(
        (flat::sibling(0), flat::sibling(2), flat::sibling(5)),
        (2, 0, 1)
    );
    assert_eq!(flat::sibling(3), 11);
    assert_eq!(flat::span(7), (0, 14));
    assert_eq!(flat::span(4), (4, 4));
    assert_eq!(flat::depth(23), 3);
}

// ---------------------------------------------------------------------------------
// Cross-check against the real `hypercore` crate
// ---------------------------------------------------------------------------------

fn from_crate(n: &hypercore_schema::Node) -> TreeNode {
    TreeNode {
        index: n.index,
        size: n.length,
        hash: n.hash.as_slice().try_into().expect("32-byte node hash"),
    }
}

/// The node the crate stores at flat index `node`.
async fn crate_node(core: &hypercore::Hypercore, node: u64) -> anyhow::Result<TreeNode> {
    let req = RequestBlock {
        index: node,
        nodes: 0,
    };
    let proof = core.create_proof(None, Some(req), None, None).await?;
    let hash = proof.and_then(|p| p.hash).expect("node is stored");
    assert_eq!(hash.nodes.len(), 1);
    Ok(from_crate(&hash.nodes[0]))
}

/// Our `BlockProof` for block `index`, assembled only from what the crate serves.
async fn crate_proof(core: &hypercore::Hypercore, index: u64) -> anyhow::Result<BlockProof> {
    let length = core.info().length;
    let block = RequestBlock { index, nodes: 0 };
    let upgrade = RequestUpgrade { start: 0, length };
    let proof = core
        .create_proof(Some(block), None, None, Some(upgrade))
        .await?
        .expect("block is stored");
    let (data, upgrade) = (proof.block.expect("block"), proof.upgrade.expect("upgrade"));
    assert_eq!(data.value, self::block(index));
    let mut roots = Vec::new();
    for r in flat::full_roots(length) {
        roots.push(crate_node(core, r).await?);
    }
    // The upgrade carries every root but the one the block path leads to.
    let others: Vec<_> = upgrade.nodes.iter().map(from_crate).collect();
    assert_eq!(others.len() + 1, roots.len(), "block {index} of {length}");
    assert!(others.iter().all(|o| roots.contains(o)));
    Ok(BlockProof {
        index,
        leaf: crate_node(core, 2 * index).await?,
        siblings: data.nodes.iter().map(from_crate).collect(),
        root: SignedTreeRoot {
            length,
            fork: proof.fork,
            roots,
            signature: Signature(upgrade.signature.as_slice().try_into()?),
        },
    })
}

async fn crate_feed(sk: &SigningKey) -> anyhow::Result<hypercore::Hypercore> {
    let key_pair = PartialKeypair {
        public: sk.verifying_key(),
        secret: Some(sk.clone()),
    };
    Ok(HypercoreBuilder::new(Storage::new_memory().await?)
        .key_pair(key_pair)
        .build()
        .await?)
}

#[tokio::test]
async fn real_hypercore_proofs_verify() -> anyhow::Result<()> {
    let sk = SigningKey::from_bytes(&[9; 32]);
    let feed = feed_key(&sk);
    let core = crate_feed(&sk).await?;
    let mut checked = 0;
    for i in 0..37u64 {
        core.append(&block(i)).await?;
        let length = i + 1;
        if ![1, 2, 3, 4, 7, 8, 13, 16, 31, 32, 37].contains(&length) {
            continue;
        }
        for index in 0..length {
            let proof = crate_proof(&core, index).await?;
            proof
                .verify_block(&feed, &block(index))
                .map_err(|e| anyhow::anyhow!("length {length}: {e}"))?;
            let tree = proof.root.verify(&feed)?;
            assert_eq!(tree, tree_hash(&proof.root.roots));
            // Our own builder agrees node for node.
            let blocks: Vec<_> = (0..length).map(block).collect();
            assert_eq!(own_proof(&blocks, index, &sk, proof.root.fork), proof);
            checked += 1;
        }
    }
    assert_eq!(checked, 154);
    Ok(())
}

#[tokio::test]
async fn tampering_is_rejected_with_the_right_error() -> anyhow::Result<()> {
    let sk = SigningKey::from_bytes(&[3; 32]);
    let feed = feed_key(&sk);
    let core = crate_feed(&sk).await?;
    for i in 0..37 {
        core.append(&block(i)).await?;
    }
    let good = crate_proof(&core, 5).await?;
    assert_eq!(good.siblings.len(), 5);
    good.verify_block(&feed, &block(5))?;
    let check = |f: &dyn Fn(&mut BlockProof), want: TreeError| {
        let mut p = good.clone();
        f(&mut p);
        assert_eq!(p.verify(&feed), Err(want));
    };
    let root = TreeError::RootMismatch { block: 5, root: 31 };
    check(&|p| p.leaf.hash[0] ^= 1, root.clone());
    check(&|p| p.leaf.size += 1, root.clone());
    check(&|p| p.siblings[2].hash[31] ^= 0x80, root.clone());
    check(&|p| p.siblings[3].size -= 1, root.clone());
    check(&|p| p.root.roots[0].hash[0] ^= 1, root);
    let bad_sig = TreeError::BadSignature {
        length: 37,
        fork: 0,
    };
    check(&|p| p.root.signature.0[10] ^= 1, bad_sig.clone());
    check(&|p| p.root.roots[2].hash[0] ^= 1, bad_sig.clone());
    check(&|p| p.root.roots[1].size += 1, bad_sig);
    check(
        &|p| p.root.fork = 1,
        TreeError::BadSignature {
            length: 37,
            fork: 1,
        },
    );
    check(
        &|p| p.root.length = 38,
        TreeError::WrongRoots {
            length: 38,
            position: 2,
            expected: Some(73),
            got: Some(72),
        },
    );
    check(
        &|p| p.root.length = 36,
        TreeError::WrongRoots {
            length: 36,
            position: 2,
            expected: None,
            got: Some(72),
        },
    );
    check(
        &|p| {
            p.root.roots.pop();
        },
        TreeError::WrongRoots {
            length: 37,
            position: 2,
            expected: Some(72),
            got: None,
        },
    );
    check(
        &|p| p.siblings[1].index += 2,
        TreeError::SiblingIndexMismatch {
            block: 5,
            position: 1,
            expected: 13,
            got: 15,
        },
    );
    check(
        &|p| {
            p.siblings.pop();
        },
        TreeError::MissingSiblings {
            block: 5,
            reached: 15,
            root: 31,
        },
    );
    check(
        &|p| p.siblings.push(p.root.roots[1].clone()),
        TreeError::ExtraSiblings {
            block: 5,
            extra: 1,
            root: 31,
        },
    );
    check(
        &|p| p.leaf.index = 12,
        TreeError::LeafIndexMismatch { block: 5, got: 12 },
    );
    check(
        &|p| p.index = 37,
        TreeError::IndexOutOfRange {
            block: 37,
            length: 37,
        },
    );
    // Another feed's key.
    let other = feed_key(&SigningKey::from_bytes(&[4; 32]));
    assert!(matches!(
        good.verify(&other),
        Err(TreeError::BadSignature { .. })
    ));
    // The wrong data for a genuine proof.
    let mut data = block(5);
    assert_eq!(
        good.verify_block(&feed, &data[1..]),
        Err(TreeError::LeafSizeMismatch {
            block: 5,
            proven: data.len() as u64,
            got: data.len() as u64 - 1,
        })
    );
    data[3] ^= 1;
    let err = good.verify_block(&feed, &data).expect_err("tampered block");
    assert_eq!(err, TreeError::LeafHashMismatch { block: 5 });
    assert_eq!(
        err.to_string(),
        "block 5: data does not hash to the proven leaf hash"
    );

    // The last block of 37 is a root by itself: no siblings at all.
    let last = crate_proof(&core, 36).await?;
    assert!(last.siblings.is_empty());
    last.verify_block(&feed, &block(36))?;
    let mut p = last.clone();
    p.siblings.push(good.siblings[0].clone());
    assert!(matches!(
        p.verify(&feed),
        Err(TreeError::ExtraSiblings { block: 36, .. })
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Our own proof builder (no hypercore): for properties over many trees.
// ---------------------------------------------------------------------------------

fn own_proof(blocks: &[Vec<u8>], index: u64, sk: &SigningKey, fork: u64) -> BlockProof {
    let leaves: Vec<TreeNode> = blocks
        .iter()
        .enumerate()
        .map(|(j, b)| build::leaf(j as u64, b))
        .collect();
    build::block_proof(&leaves, index, fork, |m| Signature(sk.sign(m).to_bytes()))
        .expect("index below length")
}

fn arb_node() -> impl Strategy<Value = TreeNode> {
    (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(index, size, hash)| TreeNode {
        index,
        size,
        hash,
    })
}

fn arb_signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}

fn arb_root() -> impl Strategy<Value = SignedTreeRoot> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(arb_node(), 0..=8),
        arb_signature(),
    )
        .prop_map(|(length, fork, roots, signature)| SignedTreeRoot {
            length,
            fork,
            roots,
            signature,
        })
}

fn arb_proof() -> impl Strategy<Value = BlockProof> {
    (
        any::<u64>(),
        arb_node(),
        prop::collection::vec(arb_node(), 0..=8),
        arb_root(),
    )
        .prop_map(|(index, leaf, siblings, root)| BlockProof {
            index,
            leaf,
            siblings,
            root,
        })
}

/// Proofs whose indices are right (so verification gets deep) but whose sizes,
/// hashes and lengths are arbitrary, including near `MAX_LENGTH` and `u64::MAX` sizes.
fn shaped_proof() -> impl Strategy<Value = BlockProof> {
    let length = prop_oneof![1..200u64, MAX_LENGTH - 3..=MAX_LENGTH, Just(u64::MAX)];
    let size = prop_oneof![0..100u64, u64::MAX - 100..=u64::MAX];
    (
        length,
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(size, 64),
    )
        .prop_map(|(length, index, fork, seed, sizes)| {
            let length_ok = length.min(MAX_LENGTH);
            let index = index % (length_ok + 2);
            let node = |index: u64, k: usize| TreeNode {
                index,
                size: sizes[k % sizes.len()],
                hash: [(seed >> (k % 64)) as u8; 32],
            };
            let roots: Vec<_> = flat::full_roots(length_ok)
                .enumerate()
                .map(|(k, r)| node(r, k))
                .collect();
            let mut siblings = Vec::new();
            let mut at = 2 * index.min(length_ok.saturating_sub(1));
            while !roots.iter().any(|r| r.index == at) && siblings.len() < MAX_SIBLINGS {
                siblings.push(node(flat::sibling(at), siblings.len() + 7));
                at = flat::parent(at);
            }
            BlockProof {
                index,
                leaf: node(2 * index, 99),
                siblings,
                root: SignedTreeRoot {
                    length,
                    fork,
                    roots,
                    signature: Signature([seed as u8; 64]),
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn block_proof_round_trips(p in arb_proof()) {
        let bytes = to_bytes(&p);
        prop_assert!(bytes.len() <= BlockProof::MAX_SIZE);
        prop_assert_eq!(from_bytes::<BlockProof>(&bytes), Ok(p));
    }

    #[test]
    fn signed_root_round_trips(r in arb_root()) {
        let mut w = Writer::new();
        r.encode(&mut w);
        let bytes = w.into_bytes();
        prop_assert!(bytes.len() <= SignedTreeRoot::MAX_ENCODED);
        let mut rd = Reader::new(&bytes);
        prop_assert_eq!(SignedTreeRoot::decode(&mut rd), Ok(r));
        prop_assert_eq!(rd.remaining(), 0);
        for cut in 0..bytes.len() {
            prop_assert!(SignedTreeRoot::decode(&mut Reader::new(&bytes[..cut])).is_err());
        }
    }

    #[test]
    fn truncated_or_trailing_input_is_rejected(p in arb_proof(), extra in 1..4usize) {
        let bytes = to_bytes(&p);
        for cut in 0..bytes.len() {
            prop_assert!(from_bytes::<BlockProof>(&bytes[..cut]).is_err());
        }
        let mut long = bytes.clone();
        long.extend(core::iter::repeat_n(0, extra));
        prop_assert_eq!(from_bytes::<BlockProof>(&long), Err(DecodeError::Trailing(extra)));
    }

    #[test]
    fn verify_never_panics(p in prop_oneof![arb_proof(), shaped_proof()], data in prop::collection::vec(any::<u8>(), 0..4)) {
        let key = feed_key(&SigningKey::from_bytes(&[1; 32]));
        let _ = p.verify(&key);
        let _ = p.verify_block(&key, &data);
        let _ = p.root.verify(&key);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut b = bytes;
        if b.len() >= 2 { b[0] = crate::codec::VERSION; b[1] = BlockProof::TAG; }
        if let Ok(p) = from_bytes::<BlockProof>(&b) {
            let _ = p.verify(&feed_key(&SigningKey::from_bytes(&[1; 32])));
        }
    }

    #[test]
    fn own_trees_verify_and_reject_other_data(
        sizes in prop::collection::vec(0..300usize, 1..40),
        pick in any::<prop::sample::Index>(),
        fork in 0..3u64,
    ) {
        let blocks: Vec<Vec<u8>> = sizes.iter().enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 13 + j) as u8).collect())
            .collect();
        let sk = SigningKey::from_bytes(&[5; 32]);
        let index = pick.index(blocks.len()) as u64;
        let p = own_proof(&blocks, index, &sk, fork);
        prop_assert_eq!(p.verify_block(&feed_key(&sk), &blocks[index as usize]), Ok(()));
        let mut other = blocks[index as usize].clone();
        other.push(0);
        prop_assert!(p.verify_block(&feed_key(&sk), &other).is_err());
    }
}

#[test]
fn oversized_input_is_rejected() {
    let big = vec![0u8; BlockProof::MAX_SIZE + 1];
    assert_eq!(
        from_bytes::<BlockProof>(&big),
        Err(DecodeError::Oversized {
            max: BlockProof::MAX_SIZE,
            got: BlockProof::MAX_SIZE + 1
        })
    );
    // A maximal proof fits exactly.
    let node = TreeNode {
        index: 0,
        size: 0,
        hash: [0; 32],
    };
    let p = BlockProof {
        index: 0,
        leaf: node.clone(),
        siblings: vec![node.clone(); MAX_SIBLINGS],
        root: SignedTreeRoot {
            length: 0,
            fork: 0,
            roots: vec![node; MAX_ROOTS],
            signature: Signature([0; 64]),
        },
    };
    assert_eq!(to_bytes(&p).len(), BlockProof::MAX_SIZE);
    assert_eq!(from_bytes::<BlockProof>(&to_bytes(&p)), Ok(p.clone()));
    let mut too_many = p;
    too_many.siblings.push(too_many.leaf.clone());
    too_many.root.roots.pop();
    assert!(matches!(
        from_bytes::<BlockProof>(&to_bytes(&too_many)),
        Err(DecodeError::TooMany { .. })
    ));
}

proptest! {
    /// The precomputed tree gives the same roots and block proofs as `block_proof`.
    #[test]
    fn a_precomputed_tree_proves_what_block_proof_proves(n in 1usize..70, pick in any::<u64>()) {
        let leaves: Vec<TreeNode> = (0..n).map(|i| build::leaf(i as u64, &block(i as u64))).collect();
        let t = build::Tree::new(&leaves);
        let index = pick % n as u64;
        let p = build::block_proof(&leaves, index, 0, |_| Signature([0; 64])).unwrap();
        prop_assert_eq!(t.roots(), p.root.roots);
        prop_assert_eq!(t.siblings(index).unwrap(), p.siblings);
        prop_assert_eq!(t.siblings(n as u64), None);
        prop_assert_eq!(t.length(), n as u64);
    }
}
