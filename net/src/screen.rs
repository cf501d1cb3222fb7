//! Our validation in front of `hypercore` 0.17's proof code, on both sides of a
//! replication session.
//!
//! - **Requests a server answers** ([`screen_request`]): `Hypercore::create_proof`
//!   panics (`expect("nodes need to be set")`, overflowing `start * 2`) on request
//!   combinations a peer chooses, and it does so while holding the feed's
//!   `std::sync::Mutex`, which poisons the feed for every later reader until restart
//!   (verified: `a_hash_request_beyond_an_upgrade_poisons_the_feed`). A server passes a
//!   request to the crate only if it is one of the shapes below, each field checked
//!   against the feed with checked arithmetic; anything else is answered `NoData`:
//!   - a block (`index < length`, held locally, `nodes ≤` [`MAX_NODES`]), alone or with
//!     an upgrade whose new length covers it;
//!   - a hash (`index` a tree node whose whole span is below `length`, `nodes ≤`
//!     [`MAX_NODES`]) alone;
//!   - a seek (`bytes < byte_length`) alone or with an upgrade;
//!   - an upgrade (`length ≥ 1`, `start + length ≤` feed length) alone or with one of
//!     the above.
//!
//!   `no_screened_request_panics_create_proof` checks the rule against a real core.
//! - **Answers a reader applies** ([`block_answer`], [`upgrade_answer`]): an answer to
//!   a block request carries exactly that block and nothing else; an answer to an
//!   upgrade request carries an upgrade whose `start + length` does not overflow and
//!   nothing else. A combined answer is refused before
//!   `Hypercore::verify_and_apply_proof` sees it.

use hypercore_protocol::schema::{Data, Request};
use hypercore_schema::DataBlock;

/// Largest `nodes` a request may name (a tree over 2^64 blocks has 64 levels).
pub const MAX_NODES: u64 = 64;

/// What a server knows of the feed a request is for.
#[derive(Clone, Copy, Debug)]
pub struct FeedView {
    /// Blocks in the signed tree.
    pub length: u64,
    /// Bytes in the signed tree.
    pub byte_length: u64,
    /// The feed's fork.
    pub fork: u64,
}

/// Why a request is not passed to the crate (answered `NoData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another fork than ours.
    Fork,
    /// A block we do not have, or beyond the feed.
    Block,
    /// A hash request that is not a node of our tree, or combined with anything.
    Hash,
    /// A seek beyond the feed's bytes, or combined with a block or hash.
    Seek,
    /// An upgrade that is empty or beyond our length.
    Upgrade,
    /// A request that asks for nothing.
    Empty,
}

/// Whether `create_proof` may be called for `r` (see the module docs).
pub fn screen_request(
    r: &Request,
    feed: FeedView,
    has: impl Fn(u64) -> bool,
) -> Result<(), Refused> {
    if r.fork != feed.fork {
        return Err(Refused::Fork);
    }
    if let Some(u) = &r.upgrade {
        let end = u.start.checked_add(u.length).ok_or(Refused::Upgrade)?;
        if u.length == 0 || end > feed.length {
            return Err(Refused::Upgrade);
        }
    }
    if let Some(b) = &r.block {
        // With an upgrade the block must lie inside the upgraded length (found by the
        // `net_serve_request` fuzz target: block 14 with upgrade 1..14 panics).
        let inside = r
            .upgrade
            .as_ref()
            .is_none_or(|u| b.index < u.start.saturating_add(u.length));
        if b.index >= feed.length || b.nodes > MAX_NODES || !has(b.index) || !inside {
            return Err(Refused::Block);
        }
    }
    if let Some(h) = &r.hash {
        let alone = r.block.is_none() && r.seek.is_none() && r.upgrade.is_none();
        if !alone || h.nodes > MAX_NODES || !node_below(h.index, feed.length) {
            return Err(Refused::Hash);
        }
    }
    if let Some(s) = &r.seek
        && (r.block.is_some() || r.hash.is_some() || s.bytes >= feed.byte_length)
    {
        return Err(Refused::Seek);
    }
    if r.block.is_none() && r.hash.is_none() && r.seek.is_none() && r.upgrade.is_none() {
        return Err(Refused::Empty);
    }
    Ok(())
}

/// Whether flat-tree node `index` spans only blocks below `length`.
fn node_below(index: u64, length: u64) -> bool {
    // A node at depth d (d trailing one bits) spans 2^d blocks ending at block
    // (index + 2^d - 1) / 2 (flat-tree right span, halved).
    let depth = index.trailing_ones();
    if depth >= 63 {
        return false;
    }
    index
        .checked_add((1u64 << depth) - 1)
        .is_some_and(|right| right / 2 < length)
}

/// The block of answer `d` to a request for block `index`, if the answer has exactly
/// that shape (see the module docs).
pub fn block_answer(d: &Data, index: u64) -> Result<&DataBlock, String> {
    if d.upgrade.is_some() || d.hash.is_some() || d.seek.is_some() {
        return Err("answer to a block request carries more than the block".into());
    }
    match &d.block {
        None => Err("data message without the block".into()),
        Some(b) if b.index != index => Err(format!("answer carries block {}", b.index)),
        Some(b) if b.nodes.len() as u64 > MAX_NODES => {
            Err(format!("{} proof nodes", b.nodes.len()))
        }
        Some(b) => Ok(b),
    }
}

/// Whether answer `d` to an upgrade request carries exactly an upgrade (see the
/// module docs).
pub fn upgrade_answer(d: &Data) -> Result<(), String> {
    if d.block.is_some() || d.hash.is_some() || d.seek.is_some() {
        return Err("answer to an upgrade request carries more than the upgrade".into());
    }
    match &d.upgrade {
        None => Err("answer without the upgrade".into()),
        Some(u) if u.start.checked_add(u.length).is_none() => {
            Err("upgrade length overflows".into())
        }
        Some(u) if u.nodes.len() as u64 > MAX_NODES => {
            Err(format!("{} upgrade nodes", u.nodes.len()))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures::FutureExt;
    use hypercore::{Hypercore, HypercoreBuilder, Storage};
    use hypercore_schema::{RequestBlock, RequestSeek, RequestUpgrade};
    use proptest::prelude::*;
    use std::panic::AssertUnwindSafe;

    async fn core(n: u64) -> Hypercore {
        let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
            .build()
            .await
            .unwrap();
        for i in 0..n {
            core.append(&vec![i as u8; 1 + (i as usize % 5)])
                .await
                .unwrap();
        }
        core
    }

    fn request(
        block: Option<RequestBlock>,
        hash: Option<RequestBlock>,
        seek: Option<RequestSeek>,
        upgrade: Option<RequestUpgrade>,
    ) -> Request {
        Request {
            id: 1,
            fork: 0,
            block,
            hash,
            seek,
            upgrade,
            manifest: false,
            priority: 0,
        }
    }

    /// `create_proof` for `r`: `Err(())` if it panicked.
    async fn proof(core: &Hypercore, r: &Request) -> Result<(), ()> {
        let fut = core.create_proof(
            r.block.clone(),
            r.hash.clone(),
            r.seek.clone(),
            r.upgrade.clone(),
        );
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(_) => Ok(()),
            Err(_) => Err(()),
        }
    }

    fn view(core: &Hypercore) -> FeedView {
        let i = core.info();
        FeedView {
            length: i.length,
            byte_length: i.byte_length,
            fork: i.fork,
        }
    }

    /// The finding, verified: one peer's request panics inside the crate with the feed's
    /// mutex held, and every later reader of the feed is refused (poisoned) — and the
    /// screen refuses that request.
    #[tokio::test]
    async fn a_hash_request_beyond_an_upgrade_poisons_the_feed() {
        let c = core(8).await;
        let fine = request(Some(RequestBlock { index: 3, nodes: 0 }), None, None, None);
        assert!(proof(&c, &fine).await.is_ok());
        let hostile = request(
            None,
            Some(RequestBlock {
                index: 12,
                nodes: 0,
            }),
            None,
            Some(RequestUpgrade {
                start: 0,
                length: 2,
            }),
        );
        assert!(proof(&c, &hostile).await.is_err(), "the crate panics");
        assert!(
            proof(&c, &fine).await.is_err(),
            "and the feed is poisoned for the next reader"
        );
        let c = core(8).await;
        assert_eq!(
            screen_request(&hostile, view(&c), |i| c.has(i)),
            Err(Refused::Hash)
        );
    }

    /// Found by the `net_serve_request` fuzz target: a block beyond the upgrade it
    /// comes with panics the crate too.
    #[tokio::test]
    async fn a_block_beyond_its_upgrade_panics_the_crate_and_is_refused() {
        let c = core(64).await;
        let hostile = request(
            Some(RequestBlock {
                index: 14,
                nodes: 13,
            }),
            None,
            None,
            Some(RequestUpgrade {
                start: 1,
                length: 13,
            }),
        );
        assert!(proof(&c, &hostile).await.is_err(), "the crate panics");
        let c = core(64).await;
        assert_eq!(
            screen_request(&hostile, view(&c), |i| c.has(i)),
            Err(Refused::Block)
        );
        let inside = request(
            Some(RequestBlock {
                index: 13,
                nodes: 0,
            }),
            None,
            None,
            Some(RequestUpgrade {
                start: 1,
                length: 13,
            }),
        );
        assert!(screen_request(&inside, view(&c), |i| c.has(i)).is_ok());
        assert!(proof(&c, &inside).await.is_ok());
    }

    fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
        prop::option::weighted(0.5, s)
    }

    fn small() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..40, Just(u64::MAX), Just(u64::MAX / 2), any::<u64>()]
    }

    fn rb() -> impl Strategy<Value = RequestBlock> {
        (small(), prop_oneof![0u64..4, small()])
            .prop_map(|(index, nodes)| RequestBlock { index, nodes })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Every request the screen lets through is answered by a real core without a
        /// panic (a panic would also poison the core for the next case's check).
        #[test]
        fn no_screened_request_panics_create_proof(
            n in 0u64..20,
            block in opt(rb()),
            hash in opt(rb()),
            seek in opt(small().prop_map(|bytes| RequestSeek { bytes })),
            upgrade in opt((small(), small()).prop_map(|(start, length)| RequestUpgrade { start, length })),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let c = core(n).await;
                let r = request(block, hash, seek, upgrade);
                if screen_request(&r, view(&c), |i| c.has(i)).is_ok() {
                    prop_assert!(proof(&c, &r).await.is_ok(), "{r:?} on a core of {n} panicked");
                }
                Ok(())
            })?;
        }
    }
}
