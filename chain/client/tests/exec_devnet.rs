//! Execution jobs end to end on a real dev chain: our runtime wasm (with the wasmi
//! interpreter inside) executed by chopsticks on 127.0.0.1:8761. `scripts/test` runs it
//! after building the runtime wasm and the example modules (`scripts/build-modules`); it
//! is `#[ignore]`d so that a plain `cargo test` needs neither.
//!
//! The point: the chain's re-run of a disputed call, inside the wasm runtime, agrees
//! with the native interpreter the executor used — on a call that succeeds and on one
//! that runs out of fuel (both proofs are refused as `NoFraud`) — and disagrees with a
//! tampered record (accepted, the executor slashed). Module validation in the runtime
//! refuses a module with floats.
#![allow(clippy::unwrap_used)] // test fixtures: a failed step is a failed test

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use datdot_chain_client::{
    ChainClient, DatdotError, PlanTerms, Role, Sla, UNIT, account, endpoint, keys,
};
use datdot_exec::record::CallRecord;
use datdot_exec::{CallFraudProof, CallStatus, OutputBlock, Program, output_hash};
use datdot_protocol::codec;
use datdot_protocol::identity::Keypair as ProtocolKey;
use datdot_testkit::{BlockMode, DevChain, SignedFeed, noise};

fn grayscale_wasm() -> Result<Vec<u8>> {
    let path = std::env::var_os("DATDOT_MODULES")
        .map_or_else(
            || datdot_testkit::chain::repo().join("target/modules"),
            PathBuf::from,
        )
        .join("grayscale.wasm");
    std::fs::read(&path).with_context(|| format!("{}: run scripts/build-modules", path.display()))
}

#[tokio::test]
#[ignore = "needs the runtime wasm, the example modules and starts a dev chain (scripts/test runs it)"]
async fn the_runtime_re_runs_a_disputed_call_exactly_as_the_executor_did() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let devnet = DevChain::start(tmp.path().join("chain"), 8761, BlockMode::Instant)?;
    let chain = ChainClient::connect(&devnet.url()).await?;
    // Progress with times (shown with --nocapture, and when the test fails).
    let t0 = std::time::Instant::now();
    let mark = |what: &str| eprintln!("[{:6.1} s] {what}", t0.elapsed().as_secs_f64());
    let (sponsor, hoster, watcher) = (
        keys::dev("publisher-1")?,
        keys::dev("hoster-1")?,
        keys::dev("attestor-1")?,
    );
    let hoster_key = ProtocolKey::from_seed(&[1; 32]);
    let noise_key = *ProtocolKey::from_seed(&[0xa4; 32]).public().as_bytes();
    let hoster_stake = 100 * UNIT;
    chain
        .register(
            &hoster,
            Role::Hoster,
            hoster_stake,
            endpoint("127.0.0.1:4100", noise_key, *hoster_key.public().as_bytes()),
            2,
        )
        .await?;

    // The input: 8 blocks of 3 KiB of pixels.
    let input = SignedFeed::new(42, (0..8).map(|i| noise(3072, i + 1)).collect());
    let plan = PlanTerms {
        replicas: 1,
        sla: Sla {
            min_throughput_bps: 1,
            max_p99_latency_us: 1_000_000,
            min_availability_ppm: 1,
        },
        price_per_period: UNIT,
        periods: 4,
    };
    let source = endpoint(
        "127.0.0.1:7200",
        *ProtocolKey::from_seed(&[7; 32]).public().as_bytes(),
        input.key(),
    );
    let published = chain
        .publish(&sponsor, input.key(), input.root_bytes(), plan, source)
        .await?;
    let (contract, _) = published.contracts[0];
    chain.confirm_hosting(&hoster, contract).await?;
    chain.offer_execution(&hoster, true).await?;
    mark("registered, published, confirmed, offered");

    // Module validation runs in the runtime: floats are refused.
    let floats = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "datdot_alloc") (param i32) (result i32) (i32.trunc_f32_s (f32.const 1))))"#,
    )?;
    let e = chain
        .upload_module(&sponsor, floats)
        .await
        .expect_err("floats are refused");
    ensure!(
        matches!(e.datdot(), Some(DatdotError::InvalidModule)),
        "{e:#}"
    );
    let wasm = grayscale_wasm()?;
    let module = chain.upload_module(&sponsor, wasm.clone()).await?;
    mark("module uploaded (and a float module refused)");
    let program = Program::new(&wasm)?;
    let need = program
        .call("process", &input.blocks[0], u64::MAX)
        .fuel_used;

    // An executor's log, computed natively: `fuel` per call, `tamper` applied.
    let output_key = SignedFeed::new(77, Vec::new()).key();
    let log =
        |job: u64, fuel: u64, calls: usize, tamper: &dyn Fn(u64, &mut CallRecord, &mut Vec<u8>)| {
            let blocks = input.blocks[..calls]
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let outcome = program.call("process", b, fuel);
                    let mut record = CallRecord::of(
                        chain.chain_id(),
                        job,
                        i as u64,
                        b,
                        &outcome,
                        hoster_key.public(),
                    );
                    let mut out = outcome.output;
                    tamper(i as u64, &mut record, &mut out);
                    codec::to_bytes(&OutputBlock::sign(record, out, &hoster_key))
                })
                .collect();
            SignedFeed::new(77, blocks)
        };
    let proof = |log: &SignedFeed, i: u64| {
        codec::to_bytes(&CallFraudProof {
            input: input.blocks[i as usize].clone(),
            input_proof: input.proof(i),
            output: log.blocks[i as usize].clone(),
            output_proof: log.proof(i),
        })
    };

    // Job 1: the per-call cap is half what a block needs; the first call runs out of fuel
    // and ends the log. The runtime agrees it does.
    let j1 = chain
        .submit_job(
            &sponsor,
            module,
            published.feed,
            "process",
            need / 2,
            8 * need,
            8 * UNIT,
        )
        .await?;
    ensure!(
        j1.executor == account(&hoster),
        "the only offering hoster executes"
    );
    chain.accept_job(&hoster, j1.job, output_key).await?;
    mark("job 1 submitted and accepted");
    let l1 = log(j1.job, need / 2, 1, &|_, _, _| {});
    let first: OutputBlock = codec::from_bytes(&l1.blocks[0])?;
    ensure!(
        first.record.status == CallStatus::OutOfFuel,
        "{:?}",
        first.record
    );
    chain
        .commit_output(&hoster, j1.job, l1.root_bytes(), need / 2, Some(false))
        .await?;
    mark("job 1 committed");
    let e = chain
        .submit_call_proof(&watcher, j1.job, proof(&l1, 0))
        .await
        .expect_err("a right record");
    ensure!(
        matches!(e.datdot(), Some(DatdotError::NoFraud)),
        "out of fuel in the runtime too: {e:#}"
    );
    mark("job 1: the out-of-fuel call refused as NoFraud");

    // Job 2: full fuel; call 5's output tampered (and recorded as such).
    let j2 = chain
        .submit_job(
            &sponsor,
            module,
            published.feed,
            "process",
            2 * need,
            8 * need,
            8 * UNIT,
        )
        .await?;
    chain.accept_job(&hoster, j2.job, output_key).await?;
    mark("job 2 submitted and accepted");
    let l2 = log(j2.job, 2 * need, 8, &|i, r, o| {
        if i == 5 {
            o[0] = o[0].wrapping_add(1);
            r.output_hash = output_hash(o);
        }
    });
    chain
        .commit_output(&hoster, j2.job, l2.root_bytes(), 8 * need, Some(true))
        .await?;
    mark("job 2 committed");
    for i in [0, 7] {
        let e = chain
            .submit_call_proof(&watcher, j2.job, proof(&l2, i))
            .await
            .expect_err("a right record");
        ensure!(
            matches!(e.datdot(), Some(DatdotError::NoFraud)),
            "call {i}: output, fuel and status agree in the runtime: {e:#}"
        );
        mark("job 2: a right call refused as NoFraud");
    }
    let before = chain.free_balance(&account(&watcher)).await?;
    let fraud = chain
        .submit_call_proof(&watcher, j2.job, proof(&l2, 5))
        .await?;
    mark("job 2: call 5 proven");
    ensure!(
        fraud.index == 5 && fraud.slashed == hoster_stake / 2,
        "{fraud:?}"
    );
    let (stake, _) = chain
        .stake_and_score(&account(&hoster))
        .await?
        .context("registered")?;
    ensure!(stake == hoster_stake / 2, "slashed: {stake}");
    ensure!(
        chain.free_balance(&account(&watcher)).await? > before,
        "the submitter is rewarded (net of fees)"
    );
    ensure!(chain.job(j2.job).await?.is_none(), "a proven job is closed");
    ensure!(
        chain.job(j1.job).await?.is_some(),
        "job 1 waits for its fraud window"
    );
    Ok(())
}
