//! The bodies of the extrinsics and agenda tasks. Decoding and verification go through
//! `datdot-protocol`; the arithmetic of settlement lives in [`crate::settle`], draws in
//! [`crate::draw`]; this file moves balances and storage accordingly.

use alloc::vec::Vec;

use datdot_protocol::codec::{Decode as WireDecode, Reader};
use datdot_protocol::identity::{PublicKey, x25519_of};
use datdot_protocol::tree::SignedTreeRoot;
use frame::deps::sp_runtime::traits::AccountIdConversion;
use frame::prelude::*;
use frame::token::fungible::Mutate;
use frame::token::{Fortitude, Precision, Preservation};
use frame::traits::Randomness;

use crate::draw::{self, Stream};
use crate::pallet::*;
use crate::settle::{self, INITIAL_SCORE};
use crate::types::*;
use crate::weights::WeightInfo as _;

/// How many of a withdrawing hoster's (expired) bad-data convictions are removed.
const MAX_CONVICTIONS_CLEARED: u32 = 64;

impl<T: Config> Pallet<T> {
    /// The account holding stakes and escrow.
    pub fn account() -> T::AccountId {
        T::PalletId::get().into_account_truncating()
    }

    pub(crate) fn now() -> BlockNumberFor<T> {
        frame_system::Pallet::<T>::block_number()
    }

    pub(crate) fn seed(subject: &[u8]) -> [u8; 32] {
        let (h, _) = T::Randomness::random(subject);
        datdot_protocol::hash::blake2b256(&[h.as_ref(), subject])
    }

    pub(crate) fn pay(to: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
        if amount.is_zero() {
            return Ok(());
        }
        T::Currency::transfer(&Self::account(), to, amount, Preservation::Preserve)?;
        Ok(())
    }

    pub(crate) fn burn(amount: BalanceOf<T>) {
        if amount.is_zero() {
            return;
        }
        // Best effort: the pot always holds every tracked amount plus the existential
        // deposit, so this burns exactly `amount`.
        let _ = T::Currency::burn_from(
            &Self::account(),
            amount,
            Preservation::Preserve,
            Precision::BestEffort,
            Fortitude::Polite,
        );
    }

    fn min_stake(role: Role) -> BalanceOf<T> {
        match role {
            Role::Hoster => T::MinHosterStake::get(),
            Role::Attestor => T::MinAttestorStake::get(),
        }
    }

    fn check_key(key: &[u8; 32]) -> DispatchResult {
        PublicKey::from_bytes(key).map_err(|_| Error::<T>::InvalidSigningKey)?;
        Ok(())
    }

    /// What every endpoint on chain must satisfy (registrations, updates, feed sources):
    /// an address, and a signing key that is an ed25519 point.
    fn check_endpoint(e: &Endpoint) -> DispatchResult {
        ensure!(!e.addr.is_empty(), Error::<T>::NoAddress);
        Self::noise_form(e)?;
        Self::check_key(&e.signing_key)
    }

    /// The endpoint's Noise key in the form connections authenticate with.
    fn noise_form(e: &Endpoint) -> Result<[u8; 32], DispatchError> {
        x25519_of(&e.noise_key).ok_or_else(|| Error::<T>::InvalidNoiseKey.into())
    }

    // ---- registration -------------------------------------------------------------

    pub(crate) fn do_register(
        who: T::AccountId,
        role: Role,
        stake: BalanceOf<T>,
        endpoint: Endpoint,
        capacity: u32,
    ) -> DispatchResult {
        ensure!(
            !Participants::<T>::contains_key(&who),
            Error::<T>::AlreadyRegistered
        );
        ensure!(stake >= Self::min_stake(role), Error::<T>::StakeTooLow);
        ensure!(
            role == Role::Attestor || capacity > 0,
            Error::<T>::NoCapacity
        );
        Self::check_endpoint(&endpoint)?;
        ensure!(
            !KeyOwner::<T>::contains_key(endpoint.signing_key),
            Error::<T>::SigningKeyInUse
        );
        let noise = Self::noise_form(&endpoint)?;
        ensure!(
            !NoiseKeyOwner::<T>::contains_key(noise),
            Error::<T>::NoiseKeyInUse
        );
        match role {
            Role::Hoster => Hosters::<T>::try_append(&who),
            Role::Attestor => Attestors::<T>::try_append(&who),
        }
        .map_err(|_| Error::<T>::TooManyParticipants)?;
        T::Currency::transfer(&who, &Self::account(), stake, Preservation::Preserve)?;
        KeyOwner::<T>::insert(endpoint.signing_key, &who);
        NoiseKeyOwner::<T>::insert(noise, &who);
        Participants::<T>::insert(
            &who,
            Participant {
                role,
                stake,
                endpoint,
                capacity: if role == Role::Hoster { capacity } else { 0 },
                hosting: 0,
                score: INITIAL_SCORE,
                failures: 0,
                status: Status::Active,
            },
        );
        Self::deposit_event(Event::Registered { who, role, stake });
        Ok(())
    }

    pub(crate) fn do_update(who: T::AccountId, endpoint: Endpoint) -> DispatchResult {
        let mut p = Participants::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        Self::check_endpoint(&endpoint)?;
        let old = p.endpoint.signing_key;
        let new_signing = endpoint.signing_key != old;
        ensure!(
            !new_signing || !KeyOwner::<T>::contains_key(endpoint.signing_key),
            Error::<T>::SigningKeyInUse
        );
        let noise = Self::noise_form(&endpoint)?;
        let old_noise = Self::noise_form(&p.endpoint).ok();
        let new_noise = old_noise != Some(noise);
        ensure!(
            !new_noise || !NoiseKeyOwner::<T>::contains_key(noise),
            Error::<T>::NoiseKeyInUse
        );
        if new_signing {
            KeyOwner::<T>::remove(old);
            KeyOwner::<T>::insert(endpoint.signing_key, &who);
        }
        if new_noise {
            if let Some(o) = old_noise {
                NoiseKeyOwner::<T>::remove(o);
            }
            NoiseKeyOwner::<T>::insert(noise, &who);
        }
        p.endpoint = endpoint;
        Participants::<T>::insert(&who, p);
        Self::deposit_event(Event::Updated { who });
        Ok(())
    }

    pub(crate) fn do_unregister(who: T::AccountId) -> DispatchResult {
        let mut p = Participants::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        ensure!(
            !matches!(p.status, Status::Unbonding { .. }),
            Error::<T>::Unbonding
        );
        ensure!(p.hosting == 0, Error::<T>::StillHosting);
        ensure!(
            ExecutorJobs::<T>::get(&who) == 0,
            Error::<T>::StillExecuting
        );
        ExecOffers::<T>::remove(&who);
        let until = Self::now().saturating_add(T::UnbondingPeriod::get());
        p.status = Status::Unbonding { until };
        Self::remove_from_list(&who, p.role);
        Participants::<T>::insert(&who, p);
        Self::deposit_event(Event::Unregistered { who, until });
        Ok(())
    }

    pub(crate) fn do_withdraw(who: T::AccountId) -> DispatchResult {
        let p = Participants::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        let Status::Unbonding { until } = p.status else {
            return Err(Error::<T>::NotUnbonding.into());
        };
        ensure!(Self::now() >= until, Error::<T>::StillUnbonding);
        Self::pay(&who, p.stake)?;
        KeyOwner::<T>::remove(p.endpoint.signing_key);
        if let Ok(noise) = Self::noise_form(&p.endpoint) {
            NoiseKeyOwner::<T>::remove(noise);
        }
        Participants::<T>::remove(&who);
        HosterHistory::<T>::remove(&who);
        // Expired by now (UnbondingPeriod > FraudWindow); entries past the limit stay,
        // harmless, as they are expired too.
        let _ = FeedConvictions::<T>::clear_prefix(&who, MAX_CONVICTIONS_CLEARED, None);
        Self::deposit_event(Event::Withdrawn {
            who,
            amount: p.stake,
        });
        Ok(())
    }

    fn remove_from_list(who: &T::AccountId, role: Role) {
        match role {
            Role::Hoster => Hosters::<T>::mutate(|l| l.retain(|a| a != who)),
            Role::Attestor => Attestors::<T>::mutate(|l| l.retain(|a| a != who)),
        }
    }

    /// Mark a participant suspended (it stays in its list but is not drawn).
    pub(crate) fn suspend(who: &T::AccountId) {
        Participants::<T>::mutate(who, |p| {
            if let Some(p) = p.as_mut().filter(|p| p.status == Status::Active) {
                p.status = Status::Suspended;
                Self::deposit_event(Event::Suspended { who: who.clone() });
            }
        });
    }

    /// Cut up to `amount` from a stake; returns what was cut (still in the pot: the
    /// caller burns it or pays part of it out). A stake below the minimum suspends.
    pub(crate) fn take_stake(
        who: &T::AccountId,
        amount: BalanceOf<T>,
        reason: PenaltyReason,
    ) -> BalanceOf<T> {
        let mut taken = Zero::zero();
        let mut below = false;
        Participants::<T>::mutate(who, |p| {
            if let Some(p) = p {
                taken = amount.min(p.stake);
                p.stake = p.stake.saturating_sub(taken);
                below = p.stake < Self::min_stake(p.role);
            }
        });
        if !taken.is_zero() {
            Self::deposit_event(Event::Penalised {
                who: who.clone(),
                amount: taken,
                reason,
            });
        }
        if below {
            Self::suspend(who);
        }
        taken
    }

    pub(crate) fn adjust_score(who: &T::AccountId, good: bool) {
        Participants::<T>::mutate(who, |p| {
            if let Some(p) = p {
                p.score = settle::score_after(p.score, good);
            }
        });
    }

    // ---- feeds, plans and contracts -------------------------------------------------

    pub(crate) fn do_publish(
        who: T::AccountId,
        key: [u8; 32],
        signed_root: &[u8],
        plan: PlanTerms<BalanceOf<T>>,
        source: Endpoint,
    ) -> DispatchResult {
        ensure!(
            (1..=MAX_REPLICAS).contains(&plan.replicas) && plan.periods >= 1,
            Error::<T>::InvalidPlan
        );
        Self::check_endpoint(&source)?;
        // Each contract's confirmation timeout lands in one block.
        let timeouts_at = Self::now()
            .saturating_add(T::ConfirmWindow::get())
            .saturating_add(One::one());
        ensure!(
            Self::agenda_has_room(timeouts_at, plan.replicas),
            Error::<T>::AgendaFull
        );
        let feed_key = PublicKey::from_bytes(&key).map_err(|_| Error::<T>::InvalidFeedKey)?;
        let root =
            decode_exact::<SignedTreeRoot>(signed_root).ok_or(Error::<T>::MalformedSignedRoot)?;
        let tree_hash = root
            .verify(&feed_key)
            .map_err(|_| Error::<T>::RootNotSigned)?;
        let bytes = root
            .roots
            .iter()
            .try_fold(0u64, |sum, r| sum.checked_add(r.size));
        ensure!(
            root.length <= T::MaxFeedLength::get()
                && bytes.is_some_and(|b| b <= T::MaxFeedBytes::get()),
            Error::<T>::FeedTooLarge
        );
        let escrow = settle::plan_escrow(
            plan.replicas,
            plan.periods,
            plan.price_per_period.saturated_into(),
            T::AttestorReward::get().saturated_into(),
            T::AttestorsPerChallenge::get(),
        )
        .and_then(|e| BalanceOf::<T>::try_from(e).ok())
        .ok_or(Error::<T>::EscrowOverflow)?;

        let id = NextFeedId::<T>::mutate(|n| {
            let id = *n;
            *n = n.saturating_add(1);
            id
        });
        let hosters = Self::draw_hosters(id, plan.replicas, core::slice::from_ref(&who));
        ensure!(
            hosters.len() as u32 == plan.replicas,
            Error::<T>::NotEnoughHosters
        );
        T::Currency::transfer(&who, &Self::account(), escrow, Preservation::Preserve)?;

        let mut feed = Feed {
            publisher: who.clone(),
            key,
            length: root.length,
            tree_hash,
            plan,
            source,
            escrow,
            contracts: BoundedVec::new(),
            ending: false,
        };
        for hoster in hosters {
            let periods = feed.plan.periods;
            Self::assign(id, &mut feed, hoster, periods);
        }
        Feeds::<T>::insert(id, feed);
        Self::deposit_event(Event::Published {
            feed: id,
            publisher: who,
            key,
            length: root.length,
            escrow,
        });
        Ok(())
    }

    /// Hosters eligible for a feed, drawn weighted by free capacity × (score + 1).
    fn draw_hosters(feed: FeedId, k: u32, exclude: &[T::AccountId]) -> Vec<T::AccountId> {
        let candidates: Vec<(T::AccountId, u64)> = Hosters::<T>::get()
            .into_iter()
            .filter(|a| !exclude.contains(a))
            .filter_map(|a| {
                let p = Participants::<T>::get(&a)?;
                let free = p.capacity.saturating_sub(p.hosting);
                (p.status == Status::Active && free > 0)
                    .then(|| (a, u64::from(free) * u64::from(p.score.saturating_add(1))))
            })
            .collect();
        let weights: Vec<u64> = candidates.iter().map(|(_, w)| *w).collect();
        let nonce = NextContractId::<T>::get();
        let subject = (b"datdot/hosters", feed, nonce).encode();
        let mut stream = Stream::new(Self::seed(&subject));
        draw::weighted(&mut stream, &weights, k as usize)
            .into_iter()
            .map(|i| candidates[i].0.clone())
            .collect()
    }

    /// Create a pending contract for `hoster` (the caller stores `feed`).
    fn assign(
        feed_id: FeedId,
        feed: &mut FeedOf<T>,
        hoster: T::AccountId,
        periods: u32,
    ) -> Option<ContractId> {
        let id = NextContractId::<T>::get();
        feed.contracts.try_push(id).ok()?;
        NextContractId::<T>::put(id.saturating_add(1));
        let deadline = Self::now().saturating_add(T::ConfirmWindow::get());
        Contracts::<T>::insert(
            id,
            Contract {
                feed: feed_id,
                hoster: hoster.clone(),
                state: ContractState::Pending { deadline },
                periods_left: periods,
                open_challenge: None,
            },
        );
        Participants::<T>::mutate(&hoster, |p| {
            if let Some(p) = p {
                p.hosting = p.hosting.saturating_add(1);
            }
        });
        Self::schedule(
            deadline.saturating_add(One::one()),
            AgendaTask::ConfirmTimeout(id),
        );
        Self::deposit_event(Event::HosterAssigned {
            feed: feed_id,
            contract: id,
            hoster,
            confirm_by: deadline,
        });
        Some(id)
    }

    pub(crate) fn do_confirm(who: T::AccountId, id: ContractId) -> DispatchResult {
        let mut c = Contracts::<T>::get(id).ok_or(Error::<T>::NoSuchContract)?;
        ensure!(c.hoster == who, Error::<T>::NotContractHoster);
        ensure!(
            matches!(c.state, ContractState::Pending { .. }),
            Error::<T>::NotPending
        );
        c.state = ContractState::Active;
        Contracts::<T>::insert(id, c);
        Self::schedule(
            Self::now().saturating_add(One::one()),
            AgendaTask::Challenge(id),
        );
        Self::deposit_event(Event::HostingConfirmed { contract: id });
        Ok(())
    }

    pub(crate) fn do_end_plan(who: T::AccountId, feed_id: FeedId) -> DispatchResult {
        let mut feed = Feeds::<T>::get(feed_id).ok_or(Error::<T>::NoSuchFeed)?;
        ensure!(feed.publisher == who, Error::<T>::NotPublisher);
        ensure!(!feed.ending, Error::<T>::PlanEnding);
        feed.ending = true;
        for id in feed.contracts.iter() {
            Self::end_contract(*id);
        }
        Feeds::<T>::insert(feed_id, feed);
        Self::maybe_finish(feed_id);
        Ok(())
    }

    /// End a contract (idempotent) and free the hoster's capacity.
    pub(crate) fn end_contract(id: ContractId) {
        let Some(mut c) = Contracts::<T>::get(id) else {
            return;
        };
        if c.state == ContractState::Ended {
            return;
        }
        c.state = ContractState::Ended;
        Participants::<T>::mutate(&c.hoster, |p| {
            if let Some(p) = p {
                p.hosting = p.hosting.saturating_sub(1);
            }
        });
        Contracts::<T>::insert(id, c);
        Self::deposit_event(Event::ContractEnded { contract: id });
    }

    /// End a contract and assign its remaining periods to another hoster.
    pub(crate) fn replace(id: ContractId) {
        let Some(c) = Contracts::<T>::get(id) else {
            return;
        };
        if c.state == ContractState::Ended {
            return;
        }
        Self::end_contract(id);
        let Some(mut feed) = Feeds::<T>::get(c.feed) else {
            return;
        };
        let mut replacement = None;
        if !feed.ending {
            Self::compact(&mut feed);
            let mut exclude: Vec<T::AccountId> = feed
                .contracts
                .iter()
                .filter_map(Contracts::<T>::get)
                .map(|c| c.hoster)
                .collect();
            exclude.push(feed.publisher.clone());
            exclude.push(c.hoster.clone());
            if let Some(h) = Self::draw_hosters(c.feed, 1, &exclude).pop() {
                replacement = Self::assign(c.feed, &mut feed, h, c.periods_left);
            }
            Feeds::<T>::insert(c.feed, feed);
        }
        Self::deposit_event(Event::HosterReplaced {
            feed: c.feed,
            contract: id,
            hoster: c.hoster,
            replacement,
        });
        Self::maybe_finish(c.feed);
    }

    /// Forget ended contracts without an open challenge.
    fn compact(feed: &mut FeedOf<T>) {
        feed.contracts.retain(|id| match Contracts::<T>::get(*id) {
            Some(c) if c.state == ContractState::Ended && c.open_challenge.is_none() => {
                Contracts::<T>::remove(*id);
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// When every contract ended and settled: refund the escrow and forget the feed.
    pub(crate) fn maybe_finish(feed_id: FeedId) {
        let Some(mut feed) = Feeds::<T>::get(feed_id) else {
            return;
        };
        Self::compact(&mut feed);
        if !feed.contracts.is_empty() {
            Feeds::<T>::insert(feed_id, feed);
            return;
        }
        let refund = feed.escrow;
        if Self::pay(&feed.publisher, refund).is_err() {
            // Cannot happen (the pot holds the escrow); keep the feed rather than lose funds.
            Feeds::<T>::insert(feed_id, feed);
            return;
        }
        Feeds::<T>::remove(feed_id);
        FeedHistory::<T>::remove(feed_id);
        Self::deposit_event(Event::PlanEnded {
            feed: feed_id,
            refund,
        });
    }

    // ---- agenda -----------------------------------------------------------------------

    /// Add `task` to block `at`'s agenda (at the earliest the next block: the current
    /// block's agenda has run). Never fails and never drops: a full page opens another.
    pub(crate) fn schedule(at: BlockNumberFor<T>, task: AgendaTask) {
        let at = at.max(Self::now().saturating_add(One::one()));
        let pages = AgendaPages::<T>::get(at);
        if let Some(last) = pages.checked_sub(1)
            && Agenda::<T>::try_mutate(at, last, |v| v.try_push(task)).is_ok()
        {
            return;
        }
        let mut page = BoundedVec::new();
        let _ = page.try_push(task); // capacity MAX_TASKS_PER_BLOCK ≥ 1
        Agenda::<T>::insert(at, pages, page);
        AgendaPages::<T>::insert(at, pages.saturating_add(1));
    }

    /// Tasks already scheduled for block `at`.
    pub(crate) fn agenda_len(at: BlockNumberFor<T>) -> u32 {
        match AgendaPages::<T>::get(at).checked_sub(1) {
            None => 0,
            Some(last) => last
                .saturating_mul(MAX_TASKS_PER_BLOCK)
                .saturating_add(Agenda::<T>::decode_len(at, last).unwrap_or(0) as u32),
        }
    }

    /// What `on_initialize` may spend on the agenda in one block.
    pub(crate) fn agenda_budget() -> Weight {
        let max = <T as frame_system::Config>::BlockWeights::get().max_block;
        Weight::from_parts(
            Perbill::from_percent(AGENDA_WEIGHT_PERCENT) * max.ref_time(),
            Perbill::from_percent(AGENDA_WEIGHT_PERCENT) * max.proof_size(),
        )
    }

    /// The most challenges one block starts ([`TYPICAL_REPORT_BYTES`] and the rule are
    /// in DESIGN §15): as many as half of the room ordinary transactions keep next to
    /// a full agenda can take the reports of. Each start brings `AttestorsPerChallenge`
    /// reports a challenge duration later, all due in the same report window; started
    /// faster than blocks take their reports, they queue, pass their deadline and
    /// honest members pay `MissedReport` (`datdot-sim network`, 10,000 hosters: 1,543
    /// penalties in set-up, when confirmations also fill the blocks). The other half
    /// is for everything else (confirmations, reveals, fraud proofs, publications).
    pub fn max_starts_per_block() -> u32 {
        let w = <T as frame_system::Config>::BlockWeights::get();
        let normal = w.get(DispatchClass::Normal);
        let room = normal
            .max_total
            .unwrap_or(w.max_block)
            .min(w.max_block.saturating_sub(Self::agenda_budget()));
        let report = T::WeightInfo::submit_report(TYPICAL_REPORT_BYTES)
            .saturating_sub(T::WeightInfo::settlement())
            .saturating_add(normal.base_extrinsic);
        let challenge = report.saturating_mul(u64::from(T::AttestorsPerChallenge::get()));
        let fit = |room: u64, one: u64| (room / 2).checked_div(one).unwrap_or(u64::MAX);
        let k = fit(room.ref_time(), challenge.ref_time())
            .min(fit(room.proof_size(), challenge.proof_size()));
        u32::try_from(k).unwrap_or(u32::MAX).max(1)
    }

    /// One task's weight with today's attestor list (a committee draw scans it).
    fn task_weight() -> Weight {
        T::WeightInfo::task(Attestors::<T>::decode_len().unwrap_or(0) as u32)
    }

    /// How many tasks one block runs today (at least one).
    pub(crate) fn agenda_tasks_per_block() -> u32 {
        let (budget, task) = (Self::agenda_budget(), Self::task_weight());
        let n = budget
            .ref_time()
            .checked_div(task.ref_time())
            .unwrap_or(u64::MAX);
        let n = match budget.proof_size().checked_div(task.proof_size()) {
            Some(p) => n.min(p),
            None => n,
        };
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// Whether `n` more tasks fit block `at` within what a block runs, with no due work
    /// waiting: an extrinsic that creates work from nothing (publish) asks first, so a
    /// flood is refused rather than delaying everyone's challenges.
    pub(crate) fn agenda_has_room(at: BlockNumberFor<T>, n: u32) -> bool {
        let (next, _) = AgendaCursor::<T>::get();
        next > Self::now()
            && Self::agenda_len(at).saturating_add(n) <= Self::agenda_tasks_per_block()
    }

    /// `on_initialize`: run due agenda tasks in order from the cursor while their weight
    /// fits [`Self::agenda_budget`] (at least one task a block) and at most
    /// `AGENDA_STEPS_PER_BLOCK` blocks are stepped; what does not fit runs in the next
    /// blocks (late, never lost). Returns the weight used.
    pub(crate) fn run_agenda(now: BlockNumberFor<T>) -> Weight {
        let (mut block, mut page) = AgendaCursor::<T>::get();
        let (budget, task) = (Self::agenda_budget(), Self::task_weight());
        let (mut reads, mut writes, mut steps) = (2u64, 1u64, 0u32);
        let mut used = Weight::zero();
        let mut ran = 0u32;
        let mut starts = Self::max_starts_per_block();
        'blocks: while block <= now && steps < AGENDA_STEPS_PER_BLOCK {
            steps += 1;
            reads += 1;
            if page >= AgendaPages::<T>::get(block) {
                AgendaPages::<T>::remove(block);
                writes += 1;
                block = block.saturating_add(One::one());
                page = 0;
                continue;
            }
            let tasks = Agenda::<T>::take(block, page);
            (reads, writes) = (reads + 1, writes + 1);
            for (i, t) in tasks.iter().enumerate() {
                if ran > 0 && !used.saturating_add(task).all_lte(budget) {
                    // The rest of this page waits for the next block, in place.
                    let rest: Vec<AgendaTask> = tasks[i..].to_vec();
                    Agenda::<T>::insert(block, page, BoundedVec::truncate_from(rest));
                    writes += 1;
                    break 'blocks;
                }
                used = used.saturating_add(task);
                ran += 1;
                Self::run_task(now, *t, &mut starts);
            }
            page += 1;
        }
        AgendaCursor::<T>::put((block, page));
        used.saturating_add(T::DbWeight::get().reads_writes(reads, writes))
    }

    /// Run one agenda task; `starts` is how many challenges this block may still start
    /// ([`Self::max_starts_per_block`]; one past it waits for the next block).
    pub(crate) fn run_task(now: BlockNumberFor<T>, task: AgendaTask, starts: &mut u32) {
        let mut start = |id: ContractId| {
            if *starts == 0 {
                Self::schedule(now.saturating_add(One::one()), AgendaTask::Challenge(id));
            } else {
                *starts -= 1;
                Self::start_challenge(now, id);
            }
        };
        match task {
            AgendaTask::Challenge(id) => start(id),
            AgendaTask::ChallengeDraw(id, left) => {
                let subject = (b"datdot/challenge-start", id, now).encode();
                if left == 0 || Stream::new(Self::seed(&subject)).below(u64::from(left) + 1) == 0 {
                    start(id);
                } else {
                    Self::schedule(
                        now.saturating_add(One::one()),
                        AgendaTask::ChallengeDraw(id, left - 1),
                    );
                }
            }
            AgendaTask::Settle(id) => Self::close_challenge(now, id),
            AgendaTask::JudgeAccusations(id) => Self::judge_accusations(id),
            AgendaTask::Prune(id) => Challenges::<T>::remove(id),
            AgendaTask::ConfirmTimeout(id) => {
                let pending = Contracts::<T>::get(id)
                    .filter(|c| matches!(c.state, ContractState::Pending { .. }));
                if let Some(c) = pending {
                    Self::adjust_score(&c.hoster, false);
                    Self::replace(id);
                }
            }
        }
    }

    /// The contract's next challenge: uniform over `ChallengePeriod ± ChallengeJitter`
    /// blocks from `now`, drawn block by block ([`AgendaTask::ChallengeDraw`]).
    fn schedule_next_challenge(now: BlockNumberFor<T>, contract: ContractId) {
        let j = T::ChallengeJitter::get();
        let earliest = now
            .saturating_add(T::ChallengePeriod::get())
            .saturating_sub(j)
            .max(now.saturating_add(One::one()));
        let left: u32 = j.saturating_mul(2u32.into()).unique_saturated_into();
        Self::schedule(earliest, AgendaTask::ChallengeDraw(contract, left));
    }

    fn start_challenge(now: BlockNumberFor<T>, contract_id: ContractId) {
        let Some(mut contract) = Contracts::<T>::get(contract_id) else {
            return;
        };
        let Some(mut feed) = Feeds::<T>::get(contract.feed) else {
            return;
        };
        if contract.state != ContractState::Active
            || contract.periods_left == 0
            || contract.open_challenge.is_some()
            || feed.ending
        {
            return;
        }
        let x = T::AttestorsPerChallenge::get();
        let budget = T::AttestorReward::get()
            .saturating_mul(x.into())
            .saturating_add(feed.plan.price_per_period);
        if feed.escrow < budget {
            // Unreachable with the escrow rule of `publish`; end rather than overdraw.
            Self::end_contract(contract_id);
            Self::maybe_finish(contract.feed);
            return;
        }
        let Some(hoster) = Participants::<T>::get(&contract.hoster) else {
            return;
        };
        let eligible: Vec<(T::AccountId, [u8; 32])> = Attestors::<T>::get()
            .into_iter()
            .filter(|a| *a != contract.hoster && *a != feed.publisher)
            .filter_map(|a| {
                let p = Participants::<T>::get(&a)?;
                (p.status == Status::Active).then_some((a, p.endpoint.signing_key))
            })
            .collect();
        if (eligible.len() as u32) < T::MinAttestors::get() {
            Self::deposit_event(Event::ChallengeSkipped {
                contract: contract_id,
                eligible: eligible.len() as u32,
            });
            Self::schedule_next_challenge(now, contract_id);
            return;
        }
        let id = NextChallengeId::<T>::mutate(|n| {
            let id = *n;
            *n = n.saturating_add(1);
            id
        });
        let subject = (b"datdot/committee", id).encode();
        let mut stream = Stream::new(Self::seed(&subject));
        let picked = draw::uniform(&mut stream, eligible.len(), x as usize);
        let attestors: BoundedVec<_, _> = picked
            .iter()
            .map(|i| eligible[*i].0.clone())
            .collect::<Vec<_>>()
            .try_into()
            .expect("at most AttestorsPerChallenge ≤ MAX_COMMITTEE (integrity_test)");
        let keys: BoundedVec<_, _> = picked
            .iter()
            .map(|i| eligible[*i].1)
            .collect::<Vec<_>>()
            .try_into()
            .expect("same length as attestors");
        let end = now.saturating_add(T::ChallengeDuration::get());
        let report_deadline = end.saturating_add(T::ReportWindow::get());
        feed.escrow = feed.escrow.saturating_sub(budget);
        contract.open_challenge = Some(id);
        Challenges::<T>::insert(
            id,
            Challenge {
                contract: contract_id,
                feed: contract.feed,
                hoster: contract.hoster.clone(),
                attestors: attestors.clone(),
                keys,
                hoster_key: hoster.endpoint.signing_key,
                feed_key: feed.key,
                feed_length: feed.length,
                feed_tree_hash: feed.tree_hash,
                start: now,
                end,
                report_deadline,
                budget,
                reports: BoundedVec::new(),
                untied: BoundedVec::new(),
                accusations: BoundedVec::new(),
                verdict: None,
                punished: BoundedVec::new(),
            },
        );
        Self::schedule(
            report_deadline.saturating_add(One::one()),
            AgendaTask::Settle(id),
        );
        Self::schedule_next_challenge(now, contract_id);
        Self::deposit_event(Event::ChallengeScheduled {
            challenge: id,
            contract: contract_id,
            feed: contract.feed,
            hoster: contract.hoster.clone(),
            attestors,
            start: now,
            end,
            report_deadline,
        });
        Feeds::<T>::insert(contract.feed, feed);
        Contracts::<T>::insert(contract_id, contract);
    }
}

/// Decode one value of our wire codec that is not a top-level message (no version/tag),
/// rejecting trailing bytes.
pub(crate) fn decode_exact<V: WireDecode>(bytes: &[u8]) -> Option<V> {
    let mut r = Reader::new(bytes);
    let v = V::decode(&mut r).ok()?;
    (r.remaining() == 0).then_some(v)
}
