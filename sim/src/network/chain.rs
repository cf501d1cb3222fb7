//! The simulated chain's blocks: the production pallet in `TestExternalities`, one
//! block at a time — `frame_system::initialize` with a seeded parent hash (the draws'
//! randomness), the pallet's `on_initialize` (its agenda: draws, closes, judgements,
//! prunes), then the block's transactions, dispatched as signed calls. Each block's
//! events, dispatch results and weights are returned; nothing is mocked.

use std::collections::VecDeque;

use frame::deps::frame_support::dispatch::{DispatchClass, GetDispatchInfo, PostDispatchInfo};
use frame::deps::sp_io;
use frame::prelude::*;
use frame::testing_prelude::TestExternalities;
use frame::traits::{Dispatchable, Hooks};

use datdot_protocol::hash::blake2b256;

use super::runtime::{Datdot, RuntimeCall, RuntimeEvent, RuntimeOrigin, SimRuntime, System};

/// The pallet's events.
pub type DatdotEvent = pallet_datdot::Event<SimRuntime>;

/// One signed transaction, with a tag the sender uses to route the result back.
#[derive(Clone, Debug)]
pub struct Tx<Tag> {
    /// The signer.
    pub who: u64,
    /// The call.
    pub call: RuntimeCall,
    /// Whose it is.
    pub tag: Tag,
}

/// What a block did.
#[derive(Debug)]
pub struct Block<Tag> {
    /// Its number.
    pub number: u32,
    /// The pallet's events, in order.
    pub events: Vec<DatdotEvent>,
    /// Each transaction's tag and result.
    pub results: Vec<(Tag, DispatchResult)>,
    /// Weight of `on_initialize` (the agenda).
    pub init_weight: Weight,
    /// Weight of the transactions (declared; refunds applied).
    pub tx_weight: Weight,
    /// Bytes of the transactions' calls.
    pub tx_bytes: usize,
}

/// The chain.
pub struct Chain {
    ext: TestExternalities,
    head: u32,
    seed: u64,
}

impl core::fmt::Debug for Chain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Chain")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// A chain from `ext` (its genesis), at block 0.
    pub fn new(ext: TestExternalities, seed: u64) -> Self {
        Chain { ext, head: 0, seed }
    }

    /// The last block produced.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Run `f` against the chain's state (queries; no block is produced).
    pub fn with<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.ext.execute_with(f)
    }

    /// Produce the next block: first up to `setup_max` calls of `setup` whatever they
    /// weigh (a network's set-up, spread over blocks so that the agenda entries it
    /// schedules are too; not counted in the block's weights), then what fits of `pool`
    /// (in order; the rest stays for the next blocks): ordinary transactions within the
    /// normal class's share of the block, and the block as a whole within `max_block`:
    /// a transaction is admitted by its declared weight and then counts its actual one
    /// (what `frame_system`'s `CheckWeight` does: reserve before dispatch, refund
    /// after).
    pub fn block<Tag>(
        &mut self,
        setup: &mut VecDeque<Tx<Tag>>,
        setup_max: usize,
        pool: &mut VecDeque<Tx<Tag>>,
    ) -> Block<Tag> {
        let number = self.head + 1;
        let parent = blake2b256(&[
            b"sim/parent",
            &self.seed.to_le_bytes(),
            &number.to_le_bytes(),
        ]);
        let block = self.ext.execute_with(|| {
            System::reset_events();
            System::initialize(&number, &parent.into(), &Default::default());
            let init_weight = Datdot::on_initialize(number);
            let weights = <SimRuntime as frame_system::Config>::BlockWeights::get();
            let normal = weights
                .get(DispatchClass::Normal)
                .max_total
                .unwrap_or(weights.max_block);
            let mut tx_weight = Weight::zero();
            let mut tx_bytes = 0;
            let mut results = Vec::new();
            for tx in setup.drain(..setup_max.min(setup.len())) {
                let res = tx.call.dispatch(RuntimeOrigin::signed(tx.who));
                results.push((tx.tag, res.map(|_| ()).map_err(|e| e.error)));
            }
            while let Some(tx) = pool.front() {
                let info = tx.call.get_dispatch_info();
                // `CheckWeight` adds the class's base weight of an extrinsic to both.
                let base = weights.get(DispatchClass::Normal).base_extrinsic;
                let w = info.total_weight().saturating_add(base);
                let fits = tx_weight.saturating_add(w).all_lte(normal)
                    && init_weight
                        .saturating_add(tx_weight)
                        .saturating_add(w)
                        .all_lte(weights.max_block);
                if !fits {
                    break;
                }
                let Some(tx) = pool.pop_front() else { break };
                tx_bytes += codec::Encode::encoded_size(&tx.call);
                let res = tx.call.dispatch(RuntimeOrigin::signed(tx.who));
                let post: PostDispatchInfo = match &res {
                    Ok(p) => *p,
                    Err(e) => e.post_info,
                };
                tx_weight = tx_weight
                    .saturating_add(post.calc_actual_weight(&info))
                    .saturating_add(base);
                results.push((tx.tag, res.map(|_| ()).map_err(|e| e.error)));
            }
            let events = System::events()
                .into_iter()
                .filter_map(|r| match r.event {
                    RuntimeEvent::Datdot(e) => Some(e),
                    _ => None,
                })
                .collect();
            Block {
                number,
                events,
                results,
                init_weight,
                tx_weight,
                tx_bytes,
            }
        });
        self.head = number;
        block
    }

    /// Keys and bytes of the whole state.
    pub fn storage_size(&mut self) -> (u64, u64) {
        self.ext.execute_with(|| {
            let (mut keys, mut bytes) = (0u64, 0u64);
            let mut key = Vec::new();
            while let Some(next) = sp_io::storage::next_key(&key) {
                let len = sp_io::storage::read(&next, &mut [], 0).unwrap_or(0);
                keys += 1;
                bytes += (next.len() as u64) + u64::from(len);
                key = next;
            }
            (keys, bytes)
        })
    }
}

/// The chain's `max_block` weight and the agenda's share of it.
pub fn limits() -> (Weight, Weight) {
    let max = <SimRuntime as frame_system::Config>::BlockWeights::get().max_block;
    let share = Perbill::from_percent(pallet_datdot::types::AGENDA_WEIGHT_PERCENT);
    let agenda = Weight::from_parts(share * max.ref_time(), share * max.proof_size());
    (max, agenda)
}
