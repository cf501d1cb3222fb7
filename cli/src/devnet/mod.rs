//! `datdot devnet`: the whole flow on 127.0.0.1 — the dev chain from our runtime (under
//! chopsticks), a publisher with a real Hypercore feed, K `datdot-hoster` and M
//! `datdot-attestor` processes (own keystores, data dirs, logs), registration, a
//! published plan, and challenges until the duration ends or Ctrl-C; live progress, a
//! summary table per hoster, and the outcome the chosen scenario must reach.
//!
//! Scenarios damage one hoster (`hoster-1`) or attestors, always from the outside: its
//! store is prepared with missing or corrupted blocks before it starts, a relay in front
//! of it (registered as its address) adds latency or trickles bytes, or two attestors run
//! the test-only byzantine modes (a `datdot-attestor` built with feature `byzantine`).

mod procs;
mod relay;
mod watch;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use datdot_chain_client::{ChainClient, ContractState, PlanTerms, UNIT, account, endpoint, keys};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use datdot_protocol::identity::Keypair;

pub use procs::Bins;
pub use watch::{Outcome, Summary};

use crate::feed::{BLOCK, LocalFeed};
use procs::Proc;

/// What `hoster-1` (or two attestors) does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Everyone behaves.
    Honest,
    /// hoster-1 lost 10 % of its blocks.
    Lossy,
    /// hoster-1 serves corrupted blocks (12.5 % of them flipped on disk).
    Corrupt,
    /// hoster-1 is slow: +150 ms latency, 512 KiB/s.
    Slow,
    /// hoster-1 trickles one byte every 50 ms after the handshake.
    Trickle,
    /// attestor-1 equivocates, attestor-2 withholds its reveal (test-only modes).
    ByzantineAttestor,
}

impl Scenario {
    /// What the SPEC says must happen.
    pub fn expectation(self) -> &'static str {
        match self {
            Scenario::Honest => "every hoster passes, nobody is slashed",
            Scenario::Lossy => "hoster-1 fails on availability (SLA), loses score, no slash yet",
            Scenario::Corrupt => {
                "a bad-data fraud proof is accepted on chain and hoster-1 is slashed"
            }
            Scenario::Slow => {
                "hoster-1 fails on latency/throughput (SLA), loses score, no slash yet"
            }
            Scenario::Trickle => {
                "hoster-1's audits hit the hard maximum; it fails the SLA, no slash yet"
            }
            Scenario::ByzantineAttestor => {
                "the equivocating attestor-1 is slashed by a fraud proof, the withholding attestor-2 pays the withholding penalty, the honest attestors are paid, every hoster passes"
            }
        }
    }
}

/// The SLA `datdot devnet` publishes its plan with.
#[derive(Clone, Copy, Debug)]
pub struct Sla {
    /// Minimum throughput, bytes per second.
    pub min_throughput_bps: u64,
    /// Maximum p99 latency, µs.
    pub max_p99_latency_us: u64,
}

/// Availability every devnet plan asks for (ppm).
const MIN_AVAILABILITY_PPM: u32 = 990_000;

/// `datdot devnet` options.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Where everything lives (wiped at start).
    pub dir: PathBuf,
    /// Hosters (K).
    pub hosters: usize,
    /// Attestors (M).
    pub attestors: usize,
    /// Feed size in bytes.
    pub feed_size: u64,
    /// How long to watch after publishing.
    pub duration: Duration,
    /// The published plan's SLA (availability ≥ 99 % always).
    pub sla: Sla,
    /// Stop as soon as the scenario's outcome is reached.
    pub until_outcome: bool,
    /// Keep everything running after the duration (until Ctrl-C).
    pub keep: bool,
    /// The scenario.
    pub scenario: Scenario,
    /// An already running chain; else one is started with `chain_script`.
    pub chain_url: Option<String>,
    /// Port of the chain started here.
    pub chain_port: u16,
    /// `scripts/devnet-chain`.
    pub chain_script: PathBuf,
    /// The daemons.
    pub bins: Bins,
    /// No live progress lines.
    pub quiet: bool,
}

/// The chain this devnet started (stopped on drop).
struct Chain {
    script: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Chain {
    fn start(script: &Path, dir: &Path, port: u16) -> anyhow::Result<Self> {
        let c = Chain {
            script: script.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
        };
        // The script's progress (an install or a build it has to make first) goes to our
        // stderr as it happens; its stdout is kept for the error message.
        let out = c
            .cmd("start")
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "starting the dev chain failed ({}): {}\n(build the runtime first: scripts/install-wasm-toolchain && scripts/build-wasm)",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
            );
        }
        Ok(c)
    }

    fn cmd(&self, what: &str) -> Command {
        let mut c = Command::new(&self.script);
        c.arg(what)
            .env("DATDOT_DEVNET_DIR", &self.dir)
            .env("DATDOT_CHAIN_PORT", self.port.to_string())
            // Blocks every 2 s from the ticker only: block numbers track time, so a burst
            // of reports cannot eat the report window (Instant mode makes a block per
            // transaction).
            .env("DATDOT_BUILD_MODE", "Manual");
        c
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        let _ = self.cmd("stop").output();
    }
}

fn plan(replicas: u32, sla: Sla) -> PlanTerms<u128> {
    PlanTerms {
        replicas,
        sla: datdot_protocol::metrics::Sla {
            min_throughput_bps: sla.min_throughput_bps,
            max_p99_latency_us: sla.max_p99_latency_us,
            min_availability_ppm: MIN_AVAILABILITY_PPM,
        },
        price_per_period: UNIT,
        periods: 1000,
    }
}

async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let t = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if t.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wait until `a` is registered. Processes are started one at a time, each waiting for
/// its registration: chopsticks 1.5.1 dropped transactions when a dozen processes
/// registered at once (DESIGN §17).
async fn registered(
    chain: &ChainClient,
    a: &datdot_chain_client::AccountId32,
) -> anyhow::Result<()> {
    wait_until("a registration", Duration::from_secs(120), || async {
        Ok(chain.participant(a).await?)
    })
    .await
    .map(drop)
}

/// Prepare hoster-1's store as the scenario says, before it starts: the feed stored and
/// marked complete, but with blocks missing (`lossy`) or corrupted on disk (`corrupt`).
async fn damage(
    dir: &Path,
    feed: &LocalFeed,
    source: (SocketAddr, [u8; 32]),
    scenario: Scenario,
) -> anyhow::Result<()> {
    let key = feed.key;
    let path = datdot_store::feed_dir(dir, &key);
    let length = feed.length();
    let core = datdot_store::open_core(&path, &key).await?;
    let conn = dial(source.0, Expect::Key(source.1), &Limits::default()).await?;
    let keep: Vec<u64> = match scenario {
        Scenario::Lossy => (0..length).filter(|i| i % 10 != 3).collect(),
        _ => (0..length).collect(),
    };
    let opts = FetchOptions {
        only: Some(keep),
        ..FetchOptions::default()
    };
    fetch(conn, key, &core, &opts, &mut |_| {}).await?;
    drop(core);
    // Reopen (flushes the oplog) so the data file holds every fetched block.
    drop(datdot_store::open_core(&path, &key).await?);
    if scenario == Scenario::Corrupt {
        let data = path.join("data");
        let mut bytes = std::fs::read(&data)?;
        for i in (0..length).filter(|i| i % 8 == 5) {
            let at = i as usize * BLOCK + 7;
            if at < bytes.len() {
                bytes[at] ^= 0x5a;
            }
        }
        std::fs::write(&data, bytes)?;
    }
    std::fs::write(path.join(datdot_store::COMPLETE), length.to_string())?;
    Ok(())
}

/// What is running once the devnet is up (all of it stopped on drop).
struct Env {
    _chain: Option<Chain>,
    chain: ChainClient,
    hosters: Vec<Proc>,
    attestors: Vec<Proc>,
    ctx: watch::Ctx,
    start: watch::Snapshot,
    events: tokio::sync::mpsc::Receiver<datdot_chain_client::BlockEvent>,
}

/// Run the devnet; returns the summary (the caller prints it and exits with its outcome).
/// `stop` turns true on Ctrl-C: during start-up everything started so far is stopped
/// and an error returned; later the watch ends and the summary is still made.
pub async fn run(o: Opts, mut stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<Summary> {
    let env = tokio::select! {
        e = setup(&o) => e?,
        _ = stop.changed() => bail!("interrupted while starting; everything started was stopped"),
    };
    let Env {
        _chain,
        chain,
        hosters,
        attestors,
        ctx,
        start,
        events,
    } = env;
    let mut summary = watch::watch(&ctx, events, o.duration, o.until_outcome, o.keep, stop).await;
    summary.finish(&chain, &ctx, &start).await?;
    drop(hosters);
    drop(attestors);
    Ok(summary)
}

async fn setup(o: &Opts) -> anyhow::Result<Env> {
    let say = |s: String| {
        if !o.quiet {
            println!("{s}");
        }
    };
    if o.dir.exists() {
        std::fs::remove_dir_all(&o.dir).with_context(|| format!("clearing {}", o.dir.display()))?;
    }
    std::fs::create_dir_all(&o.dir)?;
    let attestor_bin = match o.scenario {
        Scenario::ByzantineAttestor => o.bins.byzantine_attestor.clone().context(
            "the byzantine-attestor scenario needs a datdot-attestor built with the test-only feature: \
             cargo build --release --locked -p datdot-attestor --features byzantine (scripts/devnet does this), then --byzantine-bin PATH",
        )?,
        _ => o.bins.attestor.clone(),
    };

    // 1. The chain.
    let (_chain, url) = match &o.chain_url {
        Some(u) => (None, u.clone()),
        None => {
            say(format!(
                "starting the dev chain on ws://127.0.0.1:{} …",
                o.chain_port
            ));
            let c = Chain::start(&o.chain_script, &o.dir.join("chain"), o.chain_port)?;
            (Some(c), format!("ws://127.0.0.1:{}", o.chain_port))
        }
    };
    let chain = ChainClient::connect(&url).await?;

    // 2. The publisher's feed, served as the source.
    say(format!(
        "creating a {} feed …",
        crate::units::size(o.feed_size)
    ));
    let feed = LocalFeed::create(&o.dir.join("publisher/feed"), o.feed_size, |_, _| {}).await?;
    let signer = Keypair::from_seed(&[9; 32]);
    let source = feed
        .serve("127.0.0.1:0".parse()?, Keypair::from_seed(&[9; 32]))
        .await?;
    let root = feed.signed_root().await?;

    // 3. Hosters.
    let mut hosters: Vec<Proc> = Vec::new();
    let mut hoster_accounts = Vec::new();
    for i in 1..=o.hosters {
        let name = format!("hoster-{i}");
        let dir = o.dir.join(&name);
        let port = procs::free_port()?;
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        procs::init(&o.bins.hoster, &dir, listen)?;
        let mut args = vec![
            "--chain-url".to_string(),
            url.clone(),
            "--chain-key".into(),
            format!("dev:{name}"),
        ];
        if i == 1 {
            match o.scenario {
                Scenario::Lossy | Scenario::Corrupt => {
                    damage(&dir, &feed, source, o.scenario).await?;
                    say(format!(
                        "{name}: its store was prepared {}",
                        if o.scenario == Scenario::Lossy {
                            "with 10 % of the blocks missing"
                        } else {
                            "with 12.5 % of the blocks corrupted"
                        }
                    ));
                }
                Scenario::Slow | Scenario::Trickle => {
                    let shape = if o.scenario == Scenario::Slow {
                        relay::Shape::Slow {
                            delay: Duration::from_millis(150),
                            bytes_per_sec: 512 * 1024,
                        }
                    } else {
                        relay::Shape::Trickle {
                            free: 16 * 1024,
                            every: Duration::from_millis(50),
                        }
                    };
                    let r = relay::start(listen, shape).await?;
                    args.extend(["--advertise".into(), r.to_string()]);
                    say(format!(
                        "{name}: reached through a relay on {r} ({shape:?})"
                    ));
                }
                _ => {}
            }
        }
        let (bin, d) = (o.bins.hoster.clone(), dir.clone());
        let p = tokio::task::spawn_blocking(move || procs::start(&name, &bin, &d, &args)).await??;
        hosters.push(p);
        let a = account(&keys::dev(&format!("hoster-{i}"))?);
        registered(&chain, &a).await?;
        hoster_accounts.push(a);
    }
    // 4. Attestors.
    let mut attestors: Vec<Proc> = Vec::new();
    let mut attestor_accounts = Vec::new();
    for j in 1..=o.attestors {
        let name = format!("attestor-{j}");
        let dir = o.dir.join(&name);
        let bin = if o.scenario == Scenario::ByzantineAttestor && j <= 2 {
            attestor_bin.clone()
        } else {
            o.bins.attestor.clone()
        };
        procs::init(&bin, &dir, "127.0.0.1:0".parse()?)?;
        let mut args = vec![
            "--chain-url".to_string(),
            url.clone(),
            "--chain-key".into(),
            format!("dev:{name}"),
        ];
        if o.scenario == Scenario::ByzantineAttestor && j <= 2 {
            let b = if j == 1 { "equivocate" } else { "withhold" };
            args.extend(["--byzantine".into(), b.into()]);
            say(format!("{name}: runs the test-only byzantine mode `{b}`"));
        }
        let d = dir.clone();
        let p = tokio::task::spawn_blocking(move || procs::start(&name, &bin, &d, &args)).await??;
        attestors.push(p);
        let a = account(&keys::dev(&format!("attestor-{j}"))?);
        registered(&chain, &a).await?;
        attestor_accounts.push(a);
    }
    for p in hosters.iter().chain(attestors.iter().take(1)) {
        say(format!(
            "{}: listening on {}, metrics http://{}/metrics",
            p.name, p.listen, p.metrics
        ));
    }
    say(format!(
        "started and registered {} hosters and {} attestors (logs: {}/<name>/run.log)",
        hosters.len(),
        attestors.len(),
        o.dir.display()
    ));
    let start_state = watch::Snapshot::take(&chain, &hoster_accounts, &attestor_accounts).await?;

    // 5. Publish.
    let publisher = keys::dev("publisher-1")?;
    let signing = *signer.public().as_bytes();
    let published = chain
        .publish(
            &publisher,
            feed.key,
            root,
            plan(o.hosters as u32, o.sla),
            endpoint(&source.0.to_string(), source.1, signing),
        )
        .await?;
    say(format!(
        "published feed {} ({} blocks) with {} replicas; SLA: ≥ {}, p99 ≤ {}, availability ≥ {}",
        published.feed,
        feed.length(),
        published.contracts.len(),
        crate::units::rate(o.sla.min_throughput_bps),
        crate::units::micros(o.sla.max_p99_latency_us),
        crate::units::percent(MIN_AVAILABILITY_PPM),
    ));
    let contracts: BTreeSet<u64> = published.contracts.iter().map(|(c, _)| *c).collect();
    let events = chain.events().await?;
    for c in &contracts {
        wait_until(
            "hosters to fetch and confirm",
            Duration::from_secs(120),
            || async {
                Ok(chain
                    .contract(*c)
                    .await?
                    .filter(|x| matches!(x.state, ContractState::Active)))
            },
        )
        .await?;
    }
    say("every hoster fetched the feed and confirmed; challenges run from the next block".into());

    let ctx = watch::Ctx {
        scenario: o.scenario,
        hosters: hoster_accounts.clone(),
        attestors: attestor_accounts.clone(),
        procs: hosters
            .iter()
            .chain(&attestors)
            .map(|p| (p.name.clone(), p.pid))
            .collect(),
        quiet: o.quiet,
    };
    Ok(Env {
        _chain,
        chain,
        hosters,
        attestors,
        ctx,
        start: start_state,
        events,
    })
}
