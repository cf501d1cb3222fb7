//! Reports, settlement, fraud proofs, reveals and queries of challenges.

use alloc::vec::Vec;

use datdot_protocol::codec;
use datdot_protocol::coinflip::{Msg, commit_value};
use datdot_protocol::fraud::{FraudProof, Scope};
use datdot_protocol::identity::Ed25519Verifier;
use datdot_protocol::metrics::{MetricSummary, Sla};
use datdot_protocol::report::{AuditCheckError, Report, Tie};
use datdot_protocol::tree::tree_hash;
use frame::prelude::*;

use crate::pallet::*;
use crate::session_id;
use crate::settle::{self, HosterAction};
use crate::types::*;

impl<T: Config> Pallet<T> {
    /// This chain's identity (`datdot_protocol::identity::chain_id`) from its genesis
    /// hash — `BlockHash(0)`, which `frame_system` keeps forever (known from block 1; in
    /// `TestExternalities` the `[69; 32]` placeholder) — and [`crate::ChainSalt`].
    pub fn chain_id() -> [u8; 32] {
        let h = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
        let mut genesis = [0; 32];
        let bytes = h.as_ref();
        let n = bytes.len().min(32);
        genesis[..n].copy_from_slice(&bytes[..n]);
        datdot_protocol::identity::chain_id(&genesis, &crate::ChainSalt::<T>::get())
    }

    /// The coin-flip session of challenge `id` on this chain.
    fn session(id: ChallengeId) -> [u8; 32] {
        session_id(&Self::chain_id(), id)
    }

    /// Take a member's report; whether it was the last and settled the challenge.
    pub(crate) fn do_submit_report(
        who: T::AccountId,
        id: ChallengeId,
        bytes: &[u8],
    ) -> Result<bool, DispatchError> {
        let mut ch = Challenges::<T>::get(id).ok_or(Error::<T>::NoSuchChallenge)?;
        ensure!(ch.verdict.is_none(), Error::<T>::AlreadySettled);
        let idx = ch
            .attestors
            .iter()
            .position(|a| *a == who)
            .ok_or(Error::<T>::NotInCommittee)?;
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(now >= ch.end, Error::<T>::TooEarly);
        ensure!(now <= ch.report_deadline, Error::<T>::TooLate);
        ensure!(
            !ch.reports.iter().any(|(i, _)| usize::from(*i) == idx),
            Error::<T>::AlreadyReported
        );
        let report: Report = codec::from_bytes(bytes).map_err(|_| Error::<T>::MalformedReport)?;
        ensure!(report.chain == Self::chain_id(), Error::<T>::WrongChain);
        ensure!(report.challenge == id, Error::<T>::WrongChallenge);
        ensure!(
            report.attestor.as_bytes() == &ch.keys[idx],
            Error::<T>::WrongSigningKey
        );
        ensure!(
            report.hoster.as_bytes() == &ch.hoster_key,
            Error::<T>::WrongHoster
        );
        ensure!(report.feed == ch.feed_key, Error::<T>::WrongFeed);
        report
            .verify(&Ed25519Verifier)
            .map_err(|_| Error::<T>::InvalidReport)?;
        // As many blocks as the chain asks for: a lazy member cannot audit one block
        // (the right one for its `R` and secret) and be paid as for the full sample.
        if report.metrics.conclusive() {
            let k = u64::from(T::AuditSamples::get()).min(ch.feed_length);
            ensure!(
                report.sampled.len() as u64 == k,
                Error::<T>::NotTheScheduledSample
            );
        }
        // Tied to the schedule: `R` from the committee's transcript, this member's sample
        // from `R` and the secret the report opens. A transcript that does not verify or
        // a sample that is not the scheduled one is refused; no transcript (the flip
        // failed), or one that leaves members out, is counted and judged at settlement.
        let session = session_id(&report.chain, id);
        let check = report
            .check_audit(&Ed25519Verifier, &session, &ch.keys, ch.feed_length)
            .map_err(|e| match e {
                AuditCheckError::Sample => Error::<T>::NotTheScheduledSample,
                AuditCheckError::Receipts | AuditCheckError::Uncovered { .. } => {
                    Error::<T>::UncoveredBlocks
                }
                _ => Error::<T>::BadTranscript,
            })?;

        let index = u8::try_from(idx).expect("committee ≤ MAX_COMMITTEE = 32");
        ch.reports
            .try_push((index, report.metrics))
            .expect("one report per member, committee ≤ bound");
        let untied = match check {
            Tie::NoTranscript => Some(None),
            Tie::Tied { absent } if absent.is_empty() => None,
            Tie::Tied { absent } => Some(Some(absent.iter().fold(0u32, |m, i| m | 1 << i))),
        };
        if let Some(mask) = untied {
            ch.untied
                .try_push((index, mask))
                .expect("one report per member, committee ≤ bound");
        }
        // Withholding accusations, each backed by the accused's signed commit for the
        // round it names (so the round is real and a published reveal can be checked
        // against it): each member at most once per report, never oneself.
        let mut seen: Vec<usize> = Vec::new();
        for c in &report.coinflip.accused {
            let Some(m) = ch.keys.iter().position(|k| k == c.signer.as_bytes()) else {
                continue;
            };
            if m == idx || seen.contains(&m) || c.session != session || !c.verify(&Ed25519Verifier)
            {
                continue;
            }
            seen.push(m);
            let m = u8::try_from(m).expect("committee ≤ 32");
            let round = c.round;
            match ch
                .accusations
                .iter_mut()
                .find(|a| a.member == m && a.round == round)
            {
                Some(a) => a.count = a.count.saturating_add(1),
                None => ch
                    .accusations
                    .try_push(Accusation {
                        member: m,
                        round,
                        commit: c.y,
                        count: 1,
                        cleared: false,
                    })
                    .expect("≤ X − 1 new entries per report, ≤ X reports: within X · (X − 1)"),
            }
        }
        let all_in = ch.reports.len() == ch.attestors.len();
        Self::deposit_event(Event::ReportSubmitted {
            challenge: id,
            attestor: who,
        });
        if all_in {
            Self::settle(id, &mut ch);
        }
        Challenges::<T>::insert(id, ch);
        Ok(all_in)
    }

    /// Report window over: settle if the last report did not, give the accused one more
    /// report window to publish their reveals, and keep the challenge for the fraud
    /// window.
    pub(crate) fn close_challenge(now: BlockNumberFor<T>, id: ChallengeId) {
        let Some(mut ch) = Challenges::<T>::get(id) else {
            return;
        };
        if ch.verdict.is_none() {
            Self::settle(id, &mut ch);
        }
        Challenges::<T>::insert(id, ch);
        Self::schedule(
            now.saturating_add(T::ReportWindow::get()),
            AgendaTask::JudgeAccusations(id),
        );
        Self::schedule(
            now.saturating_add(T::FraudWindow::get()),
            AgendaTask::Prune(id),
        );
    }

    /// The last block an accused member may publish its reveal: one report window
    /// after the report deadline (an accusation made in the last report block still
    /// leaves a whole window to answer it).
    pub(crate) fn answer_deadline(ch: &ChallengeOf<T>) -> BlockNumberFor<T> {
        ch.report_deadline.saturating_add(T::ReportWindow::get())
    }

    /// Answer window over: penalise every withholding accusation that stands.
    pub(crate) fn judge_accusations(id: ChallengeId) {
        let Some(ch) = Challenges::<T>::get(id) else {
            return;
        };
        let reports = ch.reports.len();
        for a in ch.accusations.iter() {
            if settle::accusation_stands(a.count, reports, a.cleared) {
                let who = ch.attestors[usize::from(a.member)].clone();
                let taken = Self::take_stake(
                    &who,
                    T::WithholdingPenalty::get(),
                    PenaltyReason::Withholding,
                );
                Self::burn(taken);
                Self::adjust_score(&who, false);
            }
        }
    }

    /// Judge, pay, penalise and record. Mutates `ch` (the caller stores it).
    pub(crate) fn settle(id: ChallengeId, ch: &mut ChallengeOf<T>) {
        let now = frame_system::Pallet::<T>::block_number();
        let feed = Feeds::<T>::get(ch.feed);
        let sla: Sla = feed.as_ref().map(|f| f.plan.sla).unwrap_or_default();
        let price = feed
            .as_ref()
            .map(|f| f.plan.price_per_period)
            .unwrap_or_default();
        let summaries: Vec<MetricSummary> = ch.reports.iter().map(|(_, m)| *m).collect();
        let j = settle::judge(
            &summaries,
            &sla,
            T::MinReports::get() as usize,
            T::OutlierTolerancePercent::get(),
        );
        // Whoever a fraud proof convicted before settlement is not paid for this
        // challenge, nor is a member that reported it did not audit, nor one whose
        // report is not tied to the committee's schedule.
        let reports = ch.reports.len();
        let excused = |m: usize| {
            ch.punished.contains(&ch.attestors[m])
                || ch.accusations.iter().any(|a| {
                    usize::from(a.member) == m && settle::accusation_stands(a.count, reports, false)
                })
        };
        let tied = |index: &u8| {
            let record = ch.untied.iter().find(|(i, _)| i == index).map(|(_, m)| *m);
            settle::tied(record, ch.attestors.len(), excused)
        };
        let unpaid: Vec<bool> = ch
            .reports
            .iter()
            .zip(&j.outliers)
            .zip(&summaries)
            .map(|(((index, _), outlier), s)| {
                *outlier
                    || !s.conclusive()
                    || !tied(index)
                    || ch.punished.contains(&ch.attestors[usize::from(*index)])
            })
            .collect();
        let p = settle::payouts(
            ch.budget,
            price,
            T::AttestorReward::get(),
            j.verdict == Verdict::Pass && !ch.punished.contains(&ch.hoster),
            &unpaid,
        );

        // Hoster.
        if Self::pay(&ch.hoster, p.hoster).is_ok() && !p.hoster.is_zero() {
            Self::deposit_event(Event::Rewarded {
                who: ch.hoster.clone(),
                amount: p.hoster,
            });
        }
        // Reporters.
        for ((((index, _), outlier), amount), s) in ch
            .reports
            .iter()
            .zip(&j.outliers)
            .zip(&p.attestors)
            .zip(&summaries)
        {
            let who = ch.attestors[usize::from(*index)].clone();
            if *outlier {
                Self::deposit_event(Event::OutlierFlagged {
                    challenge: id,
                    attestor: who.clone(),
                });
            }
            // "Not audited" is no penalty (the member reported, and said so), but no
            // credit either.
            Self::adjust_score(&who, !*outlier && s.conclusive());
            if Self::pay(&who, *amount).is_ok() && !amount.is_zero() {
                Self::deposit_event(Event::Rewarded {
                    who,
                    amount: *amount,
                });
            }
        }
        // Members that did not report.
        for (i, who) in ch.attestors.iter().enumerate() {
            if !ch.reports.iter().any(|(r, _)| usize::from(*r) == i) {
                let taken = Self::take_stake(
                    who,
                    T::MissedReportPenalty::get(),
                    PenaltyReason::MissedReport,
                );
                Self::burn(taken);
                Self::adjust_score(who, false);
            }
        }
        // The rest of the budget goes back to the feed (or, if gone, to nobody: cannot
        // happen, a feed is only removed once no challenge of it is open).
        if let Some(mut f) = feed {
            f.escrow = f.escrow.saturating_add(p.refund);
            Feeds::<T>::insert(ch.feed, f);
        }
        // Contract bookkeeping.
        let mut finished = false;
        Contracts::<T>::mutate(ch.contract, |c| {
            if let Some(c) = c {
                c.open_challenge = None;
                if j.verdict != Verdict::Inconclusive {
                    c.periods_left = c.periods_left.saturating_sub(1);
                }
                finished = c.periods_left == 0 || c.state == ContractState::Ended;
            }
        });
        if finished {
            Self::end_contract(ch.contract);
            Self::maybe_finish(ch.feed);
        }
        // After the period bookkeeping, so a replacement inherits the periods left.
        Self::judge_hoster(ch, j.verdict);
        let median = j.median;
        let outliers = j.outliers.iter().filter(|o| **o).count() as u8;
        let reports = ch.reports.len() as u8;
        let record = VerdictRecord {
            challenge: id,
            feed: ch.feed,
            hoster: ch.hoster.clone(),
            at: now,
            verdict: j.verdict,
            median,
            reports,
            outliers,
        };
        HosterHistory::<T>::mutate(&ch.hoster, |h| push_bounded(h, record.clone()));
        if Feeds::<T>::contains_key(ch.feed) {
            FeedHistory::<T>::mutate(ch.feed, |h| push_bounded(h, record));
        }
        ch.verdict = Some(j.verdict);
        Self::deposit_event(Event::ChallengeSettled {
            challenge: id,
            verdict: j.verdict,
            median,
            reports,
            outliers,
        });
    }

    fn judge_hoster(ch: &ChallengeOf<T>, verdict: Verdict) {
        if verdict == Verdict::Inconclusive {
            return;
        }
        let Some(mut p) = Participants::<T>::get(&ch.hoster) else {
            return;
        };
        p.score = settle::score_after(p.score, verdict == Verdict::Pass);
        let (failures, action) = settle::failure_step(
            p.failures,
            verdict,
            T::SuspendAfterFailures::get(),
            T::SlashAfterFailures::get(),
        );
        p.failures = failures;
        let min = T::MinHosterStake::get();
        let reinstate =
            action == HosterAction::Recover && p.status == Status::Suspended && p.stake >= min;
        if reinstate {
            p.status = Status::Active;
        }
        Participants::<T>::insert(&ch.hoster, p.clone());
        match action {
            HosterAction::Recover if reinstate => Self::deposit_event(Event::Reinstated {
                who: ch.hoster.clone(),
            }),
            HosterAction::Suspend => Self::suspend(&ch.hoster),
            HosterAction::Slash => {
                Self::suspend(&ch.hoster);
                let amount = T::FailureSlash::get() * p.stake;
                let taken = Self::take_stake(&ch.hoster, amount, PenaltyReason::Failures);
                Self::burn(taken);
                Self::replace(ch.contract);
            }
            _ => {}
        }
    }

    pub(crate) fn do_fraud_proof(
        who: T::AccountId,
        id: ChallengeId,
        bytes: &[u8],
    ) -> DispatchResult {
        let mut ch = Challenges::<T>::get(id).ok_or(Error::<T>::NoSuchChallenge)?;
        let now = frame_system::Pallet::<T>::block_number();
        let proof: FraudProof =
            codec::from_bytes(bytes).map_err(|_| Error::<T>::MalformedFraudProof)?;
        let verdict = proof
            .verify(&Ed25519Verifier)
            .map_err(|_| Error::<T>::InvalidFraudProof)?;
        let offender_key = verdict.offender.as_bytes();
        let offender = match verdict.scope {
            Scope::CoinFlip { session, .. } => {
                ensure!(session == Self::session(id), Error::<T>::WrongSession);
                let i = ch
                    .keys
                    .iter()
                    .position(|k| k == offender_key)
                    .ok_or(Error::<T>::OffenderNotInChallenge)?;
                ch.attestors[i].clone()
            }
            Scope::Feed { chain, feed } => {
                ensure!(chain == Self::chain_id(), Error::<T>::WrongChain);
                ensure!(
                    feed == ch.feed_key && offender_key == &ch.hoster_key,
                    Error::<T>::OffenderNotInChallenge
                );
                // Judged against the published tree only: another tree the feed's author
                // signed (a fork) is the author's doing, never the hoster's.
                if let FraudProof::BadData { proof: p, .. } = &proof {
                    ensure!(
                        p.root.length == ch.feed_length
                            && tree_hash(&p.root.roots) == ch.feed_tree_hash,
                        Error::<T>::NotThePublishedTree
                    );
                }
                // One conviction per hoster and feed per fraud window: the same evidence
                // verifies in every challenge of the contract still stored.
                if let Some(until) = FeedConvictions::<T>::get(&ch.hoster, ch.feed) {
                    ensure!(now > until, Error::<T>::AlreadyPunished);
                }
                ch.hoster.clone()
            }
        };
        ensure!(offender != who, Error::<T>::SelfAccusation);
        ensure!(
            !ch.punished.contains(&offender),
            Error::<T>::AlreadyPunished
        );
        ch.punished
            .try_push(offender.clone())
            .map_err(|_| Error::<T>::AlreadyPunished)?;
        let stake = Participants::<T>::get(&offender)
            .map(|p| p.stake)
            .unwrap_or_default();
        let slashed = Self::take_stake(
            &offender,
            T::FraudSlash::get() * stake,
            PenaltyReason::Fraud,
        );
        let reward = T::FraudReward::get() * slashed;
        Self::pay(&who, reward)?;
        Self::burn(slashed.saturating_sub(reward));
        Self::suspend(&offender);
        Participants::<T>::mutate(&offender, |p| {
            if let Some(p) = p {
                p.score = 0;
            }
        });
        if offender == ch.hoster {
            FeedConvictions::<T>::insert(
                &offender,
                ch.feed,
                now.saturating_add(T::FraudWindow::get()),
            );
            Self::replace(ch.contract);
        }
        Challenges::<T>::insert(id, ch);
        Self::deposit_event(Event::FraudProven {
            challenge: id,
            offender,
            submitter: who,
            slashed,
            reward,
        });
        Ok(())
    }

    pub(crate) fn do_publish_reveal(
        who: T::AccountId,
        id: ChallengeId,
        bytes: &[u8],
    ) -> DispatchResult {
        let mut ch = Challenges::<T>::get(id).ok_or(Error::<T>::NoSuchChallenge)?;
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(now <= Self::answer_deadline(&ch), Error::<T>::TooLate);
        let idx = ch
            .attestors
            .iter()
            .position(|a| *a == who)
            .ok_or(Error::<T>::NotInCommittee)?;
        let Ok(Msg::Reveal(reveal)) = codec::from_bytes::<Msg>(bytes) else {
            return Err(Error::<T>::MalformedReveal.into());
        };
        ensure!(
            reveal.session == Self::session(id),
            Error::<T>::WrongSession
        );
        ensure!(
            reveal.signer.as_bytes() == &ch.keys[idx],
            Error::<T>::WrongSigningKey
        );
        ensure!(reveal.verify(&Ed25519Verifier), Error::<T>::InvalidReveal);
        // Only an accusation on record is answered, and only by the reveal of the commit
        // it carries: another `x`, signed now, proves nothing about the round.
        let member = u8::try_from(idx).expect("committee ≤ 32");
        let a = ch
            .accusations
            .iter_mut()
            .find(|a| a.member == member && a.round == reveal.round)
            .ok_or(Error::<T>::NotAccused)?;
        ensure!(
            commit_value(&reveal.x) == a.commit,
            Error::<T>::RevealDoesNotOpenTheCommit
        );
        a.cleared = true;
        Challenges::<T>::insert(id, ch);
        Self::deposit_event(Event::RevealPublished {
            challenge: id,
            who,
            round: reveal.round,
        });
        Ok(())
    }
}

/// Append to a bounded history, dropping the oldest entry when full.
fn push_bounded<V, S: Get<u32>>(h: &mut BoundedVec<V, S>, v: V) {
    if h.is_full() {
        h.remove(0);
    }
    let _ = h.try_push(v);
}
