//! End to end against a real devnet: our runtime wasm executed by chopsticks, a fresh
//! chain of this test's own on 127.0.0.1:8731 (`datdot_testkit::DevChain`). `scripts/test`
//! runs it after building the wasm: `cargo test --workspace --features
//! datdot-attestor/byzantine --test devnet -- --ignored` (it is `#[ignore]`d so that a
//! plain `cargo test` needs no wasm and no chopsticks).
//!
//! Register a hoster and three attestors, publish a plan (a source without an address
//! is refused; the hoster sees the assignment as an event and in storage, and the
//! feed's source), confirm hosting, receive the
//! challenge event over the subscription, check refusals (stake too low, report too
//! early, not in the committee), submit three signed reports, and read back the settled
//! verdict, the history, scores, balances and the SLA selection; a report signed for
//! another chain is refused. Finally restart the devnet (`scripts/devnet-chain stop` /
//! `start`, same port): the restarted chain has a new genesis hash, the old client
//! reconnects but refuses to sign for the old chain (`ChainReset`), a new client submits.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use datdot_chain_client::{
    ChainClient, ChainError, ChainReset, ChallengeNotice, DatdotError, PlanTerms, Role, UNIT,
    Verdict, account, endpoint, keys,
};
use datdot_protocol::codec::{self, Encode, Writer};
use datdot_protocol::coinflip::{
    SignedCommit, SignedReveal, Transcript, challenge_session, commit_value, x_of,
};
use datdot_protocol::identity::{Ed25519Verifier, Keypair as ProtocolKey, Signature};
use datdot_protocol::metrics::{MetricSummary, Outcome, Sla};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::report::{CoinFlipRecord, Report};
use datdot_protocol::schedule::sample;
use datdot_protocol::tree::build;
use datdot_testkit::{BlockMode, DevChain};
use ed25519_dalek::{Signer, SigningKey};

/// Runtime constants (chain/runtime): AttestorReward = UNIT / 10.
const ATTESTOR_REWARD: u128 = UNIT / 10;
const PRICE: u128 = UNIT;

/// A Noise key as registered (an ed25519 key of large order; the chain checks).
fn noise_key(seed: u8) -> [u8; 32] {
    *ProtocolKey::from_seed(&[seed ^ 0xa5; 32])
        .public()
        .as_bytes()
}

fn protocol_key(n: u8) -> ProtocolKey {
    ProtocolKey::from_seed(&[n; 32])
}

fn good_metrics() -> MetricSummary {
    MetricSummary {
        requests: 64,
        ok_blocks: 64,
        bytes_received: 64 * 65_536,
        latency_p50_us: 2_000,
        latency_p90_us: 4_000,
        latency_p99_us: 8_000,
        latency_max_us: 9_000,
        ttfb_p50_us: 1_000,
        ttfb_p99_us: 3_000,
        throughput_bps: 50_000_000,
        throughput_p50_bps: 45_000_000,
        connect_time_us: 800,
        lacks_data: 0,
        misbehaved: 0,
        timeouts: 0,
        outcome: Outcome::Completed,
    }
}

/// A real (small) feed: 8 blocks, the author's signed root in our wire encoding.
fn feed() -> ([u8; 32], Vec<u8>) {
    let author = SigningKey::from_bytes(&[42; 32]);
    let leaves: Vec<_> = (0..8u8)
        .map(|i| build::leaf(u64::from(i), &[i; 1024]))
        .collect();
    let proof = build::block_proof(&leaves, 0, 0, |m| Signature(author.sign(m).to_bytes()))
        .expect("block 0");
    let mut w = Writer::new();
    proof.root.encode(&mut w);
    (author.verifying_key().to_bytes(), w.into_bytes())
}

/// The committee's coin flip as the chain checks it: every member's signed commit and
/// reveal of `x_of(own)`, in committee order.
struct Flip<'a> {
    members: Vec<&'a ProtocolKey>,
    feed_length: u64,
    /// The chain the flip and the report are signed for.
    chain: [u8; 32],
    /// Blocks an audit samples (the chain's `AuditSamples`).
    samples: u32,
}

fn own_of(k: &ProtocolKey) -> [u8; 32] {
    datdot_protocol::hash::blake2b256(&[b"test/own", k.public().as_bytes()])
}

fn report(
    n: &ChallengeNotice,
    me: &ProtocolKey,
    hoster: &ProtocolKey,
    feed: [u8; 32],
    flip: &Flip<'_>,
) -> Vec<u8> {
    let session = challenge_session(&flip.chain, n.challenge);
    let x = |k: &ProtocolKey| x_of(&own_of(k));
    let t = Transcript {
        session,
        round: 0,
        commits: flip
            .members
            .iter()
            .map(|k| SignedCommit::sign(k, session, 0, commit_value(&x(k))))
            .collect(),
        reveals: flip
            .members
            .iter()
            .map(|k| SignedReveal::sign(k, session, 0, x(k)))
            .collect(),
    };
    let r = t.verify(&Ed25519Verifier).expect("a valid transcript");
    let sampled = sample(&r, &own_of(me), flip.feed_length, flip.samples);
    // The hoster's receipt for them, on this member's audit connection.
    let entries = sampled
        .iter()
        .map(|&index| ReceiptEntry {
            index,
            hash: [1; 32],
        })
        .collect();
    let receipt = SignedReceipt::sign(
        hoster,
        flip.chain,
        feed,
        *me.public().as_bytes(),
        0,
        entries,
    );
    let mut metrics = good_metrics();
    metrics.requests = sampled.len() as u32;
    metrics.ok_blocks = metrics.requests;
    let r = Report {
        chain: flip.chain,
        challenge: n.challenge,
        attestor: me.public(),
        hoster: hoster.public(),
        feed,
        sampled,
        received_root: [0; 32],
        receipts: vec![receipt],
        metrics,
        failures: vec![],
        coinflip: CoinFlipRecord {
            round: 0,
            transcript: Some(t),
            own_secret: own_of(me),
            accused: vec![],
        },
        sig: Signature([0; 64]),
    };
    codec::to_bytes(&r.sign(me))
}

async fn advance_to(chain: &ChainClient, block: u64) -> Result<()> {
    for _ in 0..200 {
        let head = chain.head().await?;
        if head >= block {
            return Ok(());
        }
        chain.dev_new_blocks((block - head) as u32).await?;
    }
    anyhow::bail!("the devnet did not reach block {block}")
}

#[tokio::test]
#[ignore = "needs the runtime wasm and starts a dev chain (scripts/test runs it)"]
async fn challenge_lifecycle_on_the_devnet() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = DevChain::start(tmp.path().join("chain"), 8731, BlockMode::Instant)?;
    let chain = ChainClient::connect(&devnet.url()).await?;

    let publisher = keys::dev("publisher-1")?;
    let hoster = keys::dev("hoster-1")?;
    let attestors = [
        keys::dev("attestor-1")?,
        keys::dev("attestor-2")?,
        keys::dev("attestor-3")?,
    ];
    let hoster_key = protocol_key(1);
    let attestor_keys = [protocol_key(11), protocol_key(12), protocol_key(13)];

    // A stake below the minimum is refused with the pallet's reason.
    let low = chain
        .register(
            &keys::dev("attestor-4")?,
            Role::Attestor,
            UNIT,
            endpoint(
                "127.0.0.1:4004",
                noise_key(4),
                *protocol_key(14).public().as_bytes(),
            ),
            0,
        )
        .await
        .expect_err("1 UNIT is below the attestor minimum");
    ensure!(
        matches!(low.datdot(), Some(DatdotError::StakeTooLow)),
        "got {low:#}"
    );
    ensure!(
        format!("{low:#}").contains("below the role's minimum"),
        "{low:#}"
    );

    // Register the hoster and the committee (concurrently: one block each).
    let hoster_stake = 100 * UNIT;
    let attestor_stake = 50 * UNIT;
    let reg_hoster = chain.register(
        &hoster,
        Role::Hoster,
        hoster_stake,
        endpoint(
            "127.0.0.1:4100",
            noise_key(1),
            *hoster_key.public().as_bytes(),
        ),
        2,
    );
    let reg = |i: usize| {
        chain.register(
            &attestors[i],
            Role::Attestor,
            attestor_stake,
            endpoint(
                &format!("127.0.0.1:{}", 4001 + i),
                noise_key(11 + i as u8),
                *attestor_keys[i].public().as_bytes(),
            ),
            0,
        )
    };
    let (a, b, c, d) = tokio::join!(reg_hoster, reg(0), reg(1), reg(2));
    a?;
    b?;
    c?;
    d?;
    ensure!(
        chain.stake_and_score(&account(&hoster)).await? == Some((hoster_stake, 500)),
        "hoster registered with its stake and the initial score"
    );

    // Four calls at once from one account (a hoster confirms several contracts at once,
    // an attestor reports on several challenges): each must get its own nonce, and all
    // land. With the nonce read per call from the chain, concurrent calls took the same
    // one and all but one failed.
    let same = || {
        endpoint(
            "127.0.0.1:4100",
            noise_key(1),
            *hoster_key.public().as_bytes(),
        )
    };
    let (u1, u2, u3, u4) = tokio::join!(
        chain.update(&hoster, same()),
        chain.update(&hoster, same()),
        chain.update(&hoster, same()),
        chain.update(&hoster, same()),
    );
    for (i, u) in [u1, u2, u3, u4].into_iter().enumerate() {
        u.with_context(|| format!("concurrent update {i} from one account"))?;
    }

    // Subscribe before anything is scheduled.
    let mut notices = chain.challenges_for(account(&attestors[0])).await?;

    let (feed_key, signed_root) = feed();
    let sla_terms = || Sla {
        min_throughput_bps: 10_000_000,
        max_p99_latency_us: 50_000,
        min_availability_ppm: 990_000,
    };
    let plan = || PlanTerms {
        replicas: 1,
        sla: sla_terms(),
        price_per_period: PRICE,
        periods: 2,
    };
    // A source without an address is refused like a registration without one.
    let no_addr = chain
        .publish(
            &publisher,
            feed_key,
            signed_root.clone(),
            plan(),
            endpoint("", noise_key(7), feed_key),
        )
        .await
        .expect_err("a source needs an address");
    ensure!(
        matches!(no_addr.datdot(), Some(DatdotError::NoAddress)),
        "got {no_addr:#}"
    );
    let mut assignments = chain.assignments_for(account(&hoster)).await?;
    let source = endpoint("127.0.0.1:7200", noise_key(7), feed_key);
    let published = chain
        .publish(&publisher, feed_key, signed_root, plan(), source)
        .await?;
    ensure!(published.contracts.len() == 1, "{published:?}");
    let (contract, assigned) = published.contracts[0];
    ensure!(assigned == account(&hoster), "the only hoster is assigned");

    // The hoster learns of it from the event, from storage, and reads where to fetch.
    let a = tokio::time::timeout(Duration::from_secs(30), assignments.recv())
        .await
        .context("no HosterAssigned within 30 s")?
        .context("assignment follower ended")?;
    ensure!((a.contract, a.feed) == (contract, published.feed), "{a:?}");
    let pending = chain.pending_for(&account(&hoster)).await?;
    ensure!(
        pending.len() == 1
            && pending[0].contract == contract
            && pending[0].confirm_by == a.confirm_by,
        "{pending:?}"
    );
    let peers = chain
        .feed_peers(published.feed, &account(&hoster))
        .await?
        .context("the feed is stored")?;
    ensure!(
        peers.len() == 1
            && peers[0].addr == "127.0.0.1:7200"
            && peers[0].noise_key == noise_key(7)
            && peers[0].hoster.is_none(),
        "only the source until a hoster is active: {peers:?}"
    );

    // Only the assigned hoster may confirm.
    let wrong = chain
        .confirm_hosting(&attestors[0], contract)
        .await
        .expect_err("not the contract's hoster");
    ensure!(
        matches!(wrong.datdot(), Some(DatdotError::NotContractHoster)),
        "{wrong:#}"
    );
    chain.confirm_hosting(&hoster, contract).await?;

    // The challenge event reaches the committee member over the subscription.
    chain.dev_new_blocks(2).await?;
    let notice = tokio::time::timeout(Duration::from_secs(60), notices.recv())
        .await
        .context("no challenge event within 60 s")?
        .context("subscription ended")?;
    ensure!(notice.hoster == account(&hoster), "{notice:?}");
    ensure!(notice.feed == published.feed, "{notice:?}");
    ensure!(notice.start < notice.end && notice.end < notice.report_deadline);
    let mut committee = notice.attestors.clone();
    committee.sort();
    let mut expected: Vec<_> = attestors.iter().map(account).collect();
    expected.sort();
    ensure!(
        committee == expected,
        "all three attestors drawn: {notice:?}"
    );

    let flip = Flip {
        members: notice
            .attestors
            .iter()
            .map(|who| {
                let k = attestors.iter().position(|a| account(a) == *who);
                &attestor_keys[k.expect("member")]
            })
            .collect(),
        feed_length: chain
            .challenge(notice.challenge)
            .await?
            .context("challenge stored")?
            .feed_length,
        chain: chain.chain_id(),
        samples: chain.audit_samples().await?,
    };
    // Refusals: too early, and a report signed by someone not on the committee.
    let (i0, first) = attestors
        .iter()
        .enumerate()
        .find(|(_, k)| account(k) == notice.attestors[0])
        .expect("member");
    let early = chain
        .submit_report(
            first,
            notice.challenge,
            report(&notice, &attestor_keys[i0], &hoster_key, feed_key, &flip),
        )
        .await
        .expect_err("before end");
    ensure!(
        matches!(early.datdot(), Some(DatdotError::TooEarly)),
        "{early:#}"
    );

    advance_to(&chain, u64::from(notice.end)).await?;
    let outsider = chain
        .submit_report(
            &publisher,
            notice.challenge,
            report(&notice, &protocol_key(99), &hoster_key, feed_key, &flip),
        )
        .await
        .expect_err("not in the committee");
    ensure!(
        matches!(outsider.datdot(), Some(DatdotError::NotInCommittee)),
        "{outsider:#}"
    );
    // The chain's identity is the genesis hash the node reports, and a report (with its
    // flip and receipts) signed for another chain is refused.
    ensure!(chain.chain_id() == chain.served_chain_id().await?);
    let elsewhere = Flip {
        members: flip.members.clone(),
        chain: [0x11; 32],
        ..flip
    };
    let replayed = chain
        .submit_report(
            first,
            notice.challenge,
            report(
                &notice,
                &attestor_keys[i0],
                &hoster_key,
                feed_key,
                &elsewhere,
            ),
        )
        .await
        .expect_err("another chain's report");
    ensure!(
        matches!(replayed.datdot(), Some(DatdotError::WrongChain)),
        "{replayed:#}"
    );

    // Three reports; the last one settles.
    let hoster_before = chain.free_balance(&account(&hoster)).await?;
    let mut paid_before = Vec::new();
    for (i, who) in notice.attestors.iter().enumerate() {
        let k = attestors
            .iter()
            .position(|a| account(a) == *who)
            .expect("member");
        chain
            .submit_report(
                &attestors[k],
                notice.challenge,
                report(&notice, &attestor_keys[k], &hoster_key, feed_key, &flip),
            )
            .await
            .with_context(|| format!("report {i}"))?;
        paid_before.push(chain.free_balance(who).await?);
    }
    let again = chain
        .submit_report(
            first,
            notice.challenge,
            report(&notice, &attestor_keys[i0], &hoster_key, feed_key, &flip),
        )
        .await
        .expect_err("second report");
    ensure!(
        matches!(
            again.datdot(),
            Some(DatdotError::AlreadyReported | DatdotError::AlreadySettled)
        ),
        "{again:#}"
    );

    // The verdict, read back from storage.
    let ch = chain
        .challenge(notice.challenge)
        .await?
        .context("challenge still stored")?;
    ensure!(
        matches!(ch.verdict, Some(Verdict::Pass)),
        "{:?}",
        ch.verdict
    );
    let history = chain.hoster_history(&account(&hoster)).await?;
    ensure!(history.len() == 1, "{history:?}");
    let rec = &history[0];
    ensure!(rec.challenge == notice.challenge && rec.reports == 3);
    ensure!(matches!(rec.verdict, Verdict::Pass));
    let median = rec.median.as_ref().context("median stored")?;
    ensure!(median.throughput_bps == 50_000_000 && median.latency_p99_us == 8_000);
    ensure!(chain.feed_history(published.feed).await?.len() == 1);

    // Balances: the hoster earned the price; the first two reporters (who sent nothing
    // after their report, so paid no fee since) earned the attestor reward.
    let hoster_after = chain.free_balance(&account(&hoster)).await?;
    ensure!(
        hoster_after == hoster_before + PRICE,
        "{hoster_before} -> {hoster_after}"
    );
    for (who, before) in notice.attestors.iter().zip(&paid_before).take(2) {
        let after = chain.free_balance(who).await?;
        ensure!(after == before + ATTESTOR_REWARD, "{before} -> {after}");
    }
    ensure!(
        chain.stake_and_score(&account(&hoster)).await? == Some((hoster_stake, 510)),
        "a pass raises the score and never touches the stake"
    );
    for who in &notice.attestors {
        ensure!(chain.stake_and_score(who).await? == Some((attestor_stake, 510)));
    }

    // SLA selection: the hoster meets this SLA, not a stricter one.
    let sla = sla_terms();
    let picked = chain.select(&sla).await?;
    ensure!(
        picked.len() == 1 && picked[0].hoster == account(&hoster),
        "{picked:?}"
    );
    let strict = Sla {
        min_throughput_bps: 100_000_000,
        ..sla
    };
    ensure!(chain.select(&strict).await?.is_empty());

    // The node restarts (chopsticks starts again from a genesis with a new salt): the
    // same client reconnects by itself and reads, but it is a new chain, so the client
    // refuses to sign for the old one and says why; a new client works.
    let old_chain = chain.chain_id();
    devnet.restart()?;
    let mut head = Err(anyhow::anyhow!("not tried"));
    for _ in 0..40 {
        head = chain.head().await.map_err(Into::into);
        if head.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    head.context("the client did not reconnect after the restart")?;
    ensure!(
        chain.served_chain_id().await? != old_chain,
        "a reset is a new chain"
    );
    let attestor_4 = keys::dev("attestor-4")?;
    let register = |c: &ChainClient| {
        let c = c.clone();
        let k = attestor_4.clone();
        async move {
            c.register(
                &k,
                Role::Attestor,
                attestor_stake,
                endpoint(
                    "127.0.0.1:4004",
                    noise_key(4),
                    *protocol_key(14).public().as_bytes(),
                ),
                0,
            )
            .await
        }
    };
    let stale = register(&chain)
        .await
        .expect_err("signed for the old chain");
    ensure!(
        matches!(stale, ChainError::Reset(ChainReset { .. })),
        "the old client says the chain was reset: {stale:#}"
    );
    let fresh = ChainClient::connect(&devnet.url()).await?;
    ensure!(fresh.chain_id() != old_chain);
    register(&fresh)
        .await
        .context("submitting over a new client")?;
    Ok(())
}

/// Chain RPC outages of 60 s, on a fresh chain of its own (127.0.0.1:8732) behind a
/// proxy the test cuts (open connections closed, new ones refused): a read, then a
/// transaction, issued during an outage with [`node::retry_for`] and
/// [`node::OUTAGE_PATIENCE`] (what the attestor's challenge work uses for every chain
/// call) are answered once the proxy is restored, on the same client (the reconnecting
/// RPC client finds the node again).
#[tokio::test]
#[ignore = "needs the runtime wasm and starts a dev chain (scripts/test runs it)"]
async fn a_60_s_chain_outage_is_ridden_out() -> Result<()> {
    use datdot_chain_client::node;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let tmp = tempfile::tempdir()?;
    let devnet = DevChain::start(tmp.path().join("chain"), 8732, BlockMode::Instant)?;
    let proxy = Arc::new(datdot_testkit::Proxy::start(([127, 0, 0, 1], 8732).into()).await?);
    let chain = ChainClient::connect(&format!("ws://{}", proxy.addr())).await?;
    let before = chain.head().await?;
    let errors = AtomicU64::new(0);
    // Cut for 60 s; `restored` is set just before the proxy forwards again.
    let outage = || {
        proxy.cut();
        let restored = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (proxy, restored) = (proxy.clone(), restored.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                restored.store(true, Ordering::SeqCst);
                proxy.restore();
            }
        });
        (restored, task)
    };

    let (restored, task) = outage();
    let head = node::retry_for(&errors, "reading the head", node::OUTAGE_PATIENCE, || {
        chain.head()
    })
    .await?;
    ensure!(
        restored.load(Ordering::SeqCst) && head >= before,
        "the read is answered after the outage"
    );
    task.await?;

    let attestor = keys::dev("attestor-4")?;
    let (restored, task) = outage();
    node::retry_for(&errors, "registering", node::OUTAGE_PATIENCE, || {
        chain.register(
            &attestor,
            Role::Attestor,
            50 * UNIT,
            endpoint(
                "127.0.0.1:4009",
                noise_key(19),
                *protocol_key(19).public().as_bytes(),
            ),
            0,
        )
    })
    .await?;
    ensure!(
        restored.load(Ordering::SeqCst),
        "the transaction lands after the outage"
    );
    task.await?;
    ensure!(
        chain.participant(&account(&attestor)).await?.is_some(),
        "the registration is on chain"
    );
    eprintln!(
        "two 60 s outages ridden out: {} failed calls retried",
        errors.load(Ordering::Relaxed)
    );
    drop(devnet);
    Ok(())
}
