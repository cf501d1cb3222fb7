//! `datdot-attestor`: audit datdot hosters when the chain picks this node.
//!
//! ```text
//! datdot-attestor init                         # ~/.datdot-attestor: keystore (0600) + attestor.toml
//! datdot-attestor run --chain-url ws://127.0.0.1:8000 --chain-key dev:attestor-1
//!                                              # register, answer every challenge that names us
//! datdot-attestor info [--json]                # keys to register, addresses
//! datdot-attestor flip --committee FILE        # coin flips with a fixed committee (no chain)
//! datdot-attestor audit --hoster ADDR ...      # one audit of one hoster (no chain), JSON
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datdot_attestor::challenge::Ctx;
use datdot_attestor::config::Config;
use datdot_attestor::metrics::{Counters, render};
use datdot_attestor::tools::{CommitteeFile, audit_json, flip_rounds};
use datdot_attestor::{hook, state::State};
use datdot_chain_client::{account, keys, node};
use datdot_net::Limits;
use datdot_net::audit::{AuditPlan, AuditTarget, audit};
use datdot_net::swarm::{Swarm, SwarmCounters};
use datdot_node::chain::ChainFlags;
use datdot_protocol::identity::{Keypair, PublicKey};

/// Audit datdot hosters when the chain picks this node: join the challenge's secret
/// swarm, agree on a random value with the other attestors (commit-reveal coin flip
/// with fraud proofs), audit the hoster unannounced at a time derived from it, and
/// report signed measurements on chain.
#[derive(Parser, Debug)]
#[command(name = "datdot-attestor", version, about, long_about = None)]
struct Cli {
    /// Attestor directory: keystore, attestor.toml, state.redb.
    #[arg(long, global = true, env = "DATDOT_ATTESTOR_DIR", default_value_os_t = default_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the attestor directory: a new keystore (mode 0600) and a commented attestor.toml.
    Init {
        /// Address committee members connect to.
        #[arg(long, default_value = "0.0.0.0:7300")]
        listen: SocketAddr,
        /// Address of the Prometheus /metrics endpoint.
        #[arg(long, default_value = "127.0.0.1:9300")]
        metrics: SocketAddr,
    },
    /// Register with the chain (or update the registered address and keys) and answer
    /// every challenge that names this attestor until stopped (Ctrl-C). Unfinished
    /// challenges in the state file are resumed.
    Run {
        /// Override `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override `metrics`.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        #[command(flatten)]
        chain: ChainFlags,
        /// TEST ONLY: misbehave in coin flips (equivocate, bad-reveal, withhold, offline, divergent).
        #[cfg(feature = "byzantine")]
        #[arg(long)]
        byzantine: Option<String>,
    },
    /// Print this attestor's keys (to register on chain) and addresses.
    Info {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run coin flips with the committee in FILE over the real secret swarm, without a
    /// chain; one JSON line per flip (outcome, R, time to R, fraud proofs).
    Flip {
        /// Committee file (TOML: session = hex, [[members]] addr, noise, signing).
        #[arg(long)]
        committee: PathBuf,
        /// Override `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Flips to run (each in its own session).
        #[arg(long, default_value_t = 1)]
        rounds: u64,
        /// Start the first flip at this Unix time (ms), to start a committee together.
        #[arg(long)]
        start_at: Option<u64>,
        /// Per-phase timeout in ms (commit, reveal, confirm; default 5000/5000/2000).
        /// Every member must use the same value.
        #[arg(long)]
        phase_ms: Option<u64>,
        /// TEST ONLY: misbehave (equivocate, bad-reveal, withhold, offline, divergent).
        #[cfg(feature = "byzantine")]
        #[arg(long)]
        byzantine: Option<String>,
    },
    /// Audit one hoster once (fresh identity, sampled blocks verified) and print JSON.
    Audit {
        /// The hoster's address.
        #[arg(long)]
        hoster: SocketAddr,
        /// Its Noise key (hex).
        #[arg(long)]
        hoster_noise: String,
        /// Its receipt-signing key (hex).
        #[arg(long)]
        hoster_signing: String,
        /// The feed key (hex).
        #[arg(long)]
        feed: String,
        /// Block indices (comma-separated).
        #[arg(long, value_delimiter = ',')]
        blocks: Vec<u64>,
        /// Requests in flight (default: the config's window).
        #[arg(long)]
        window: Option<usize>,
        /// The chain the hoster signs receipts for (its chain id, hex; default zeros: a
        /// hoster without a chain). Receipts for another chain are counted as bad.
        #[arg(long)]
        chain: Option<String>,
    },
}

const DEFAULT_LOG: &str = "info,hypercore=warn,hypercore_protocol=warn,hypercore_handshake=warn";

fn default_dir() -> PathBuf {
    datdot_node::daemon::home_dir(".datdot-attestor")
}

fn main() -> anyhow::Result<()> {
    // The hypercore crates log every call (`#[instrument(ret)]`) at INFO: DEFAULT_LOG keeps
    // them at WARN unless RUST_LOG asks otherwise.
    datdot_node::daemon::init_tracing(DEFAULT_LOG);
    let cli = Cli::parse();
    let rt = datdot_node::daemon::runtime()?;
    rt.block_on(async_main(cli))
}

fn key32(s: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|v| v.try_into().ok())
        .with_context(|| format!("{what} must be 64 hex characters"))
}

#[cfg(feature = "byzantine")]
fn behaviour(
    s: Option<String>,
) -> anyhow::Result<Option<datdot_protocol::coinflip::byzantine::Behaviour>> {
    s.map(|s| {
        datdot_protocol::coinflip::byzantine::Behaviour::from_name(&s)
            .with_context(|| format!("unknown byzantine behaviour {s:?}"))
    })
    .transpose()
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.dir;
    let cfg_path = dir.join(datdot_attestor::CONFIG_FILE);
    match cli.cmd {
        Cmd::Init { listen, metrics } => {
            let config = Config {
                listen,
                metrics,
                ..Config::default()
            };
            datdot_attestor::init(&dir, &config)?;
            let (noise, signing) = datdot_attestor::identities(&dir)?;
            println!("created {}", dir.display());
            println!("  config      {}", cfg_path.display());
            println!("  noise key   {}", hex::encode(noise));
            println!("  signing key {}", hex::encode(signing));
            println!(
                "next: datdot-attestor run --chain-url ws://127.0.0.1:8000 --chain-key dev:attestor-1"
            );
        }
        Cmd::Info { json } => {
            let config = Config::load(&cfg_path)?;
            let (noise, signing) = datdot_attestor::identities(&dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "dir": dir.display().to_string(),
                        "listen": config.listen.to_string(),
                        "metrics": config.metrics.to_string(),
                        "noise": hex::encode(noise),
                        "signing": hex::encode(signing),
                    })
                );
            } else {
                println!("dir         {}", dir.display());
                println!("listen      {}", config.listen);
                println!("metrics     {}", config.metrics);
                match &config.chain {
                    Some(c) => println!("chain       {} as {}", c.url, c.key),
                    None => println!("chain       none (add a [chain] section or --chain-url)"),
                }
                println!("noise key   {}", hex::encode(noise));
                println!("signing key {}", hex::encode(signing));
            }
        }
        Cmd::Flip {
            committee,
            listen,
            rounds,
            start_at,
            phase_ms,
            #[cfg(feature = "byzantine")]
            byzantine,
        } => {
            let config = Config::load(&cfg_path)?;
            let ks = datdot_attestor::keystore(&dir)?;
            let c = CommitteeFile::load(&committee)?;
            #[cfg(feature = "byzantine")]
            let b = behaviour(byzantine)?;
            let seed = ks.signing;
            let tamper = move || -> Option<datdot_attestor::flip::Tamper> {
                #[cfg(feature = "byzantine")]
                {
                    b.map(|b| datdot_attestor::flip::Tamper::new(b, Keypair::from_seed(&seed)))
                }
                #[cfg(not(feature = "byzantine"))]
                {
                    let _ = seed;
                    None
                }
            };
            let mut out = std::io::stdout();
            flip_rounds(
                ks.signing,
                ks.noise,
                listen.unwrap_or(config.listen),
                &c,
                rounds,
                start_at,
                phase_ms.map(std::time::Duration::from_millis),
                tamper,
                &mut out,
            )
            .await?;
        }
        Cmd::Audit {
            hoster,
            hoster_noise,
            hoster_signing,
            feed,
            blocks,
            window,
            chain,
        } => {
            let config = Config::load(&cfg_path).unwrap_or_default();
            let chain = match chain {
                Some(c) => key32(&c, "--chain")?,
                None => [0; 32],
            };
            let target = AuditTarget {
                addr: hoster,
                noise_key: key32(&hoster_noise, "--hoster-noise")?,
                hoster: PublicKey::from_bytes(&key32(&hoster_signing, "--hoster-signing")?)
                    .map_err(|e| anyhow::anyhow!("--hoster-signing: {e}"))?,
                feed: key32(&feed, "--feed")?,
                chain,
            };
            let mut sample = blocks;
            sample.sort_unstable();
            sample.dedup();
            let plan = AuditPlan {
                sample,
                config: config.audit.config(None)?,
                window: window.unwrap_or(config.window),
                epoch: std::time::Instant::now(),
            };
            let out = audit(&target, &plan, &Limits::default()).await;
            println!("{}", serde_json::to_string_pretty(&audit_json(&out))?);
        }
        Cmd::Run {
            listen,
            metrics,
            chain,
            #[cfg(feature = "byzantine")]
            byzantine,
        } => {
            let mut config = Config::load(&cfg_path)?;
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(m) = metrics {
                config.metrics = m;
            }
            chain.apply(&mut config.chain)?;
            let Some(chain_cfg) = config.chain.clone() else {
                anyhow::bail!(
                    "run needs a chain: --chain-url and --chain-key, or a [chain] section in {}",
                    cfg_path.display()
                );
            };
            config.validate()?;
            let ks = datdot_attestor::keystore(&dir)?;
            let state_path = dir.join(datdot_attestor::STATE_FILE);
            let swarm_counters = Arc::new(SwarmCounters::default());
            let swarm = Swarm::bind(config.listen, &ks.noise, swarm_counters.clone())
                .await
                .with_context(|| format!("listening on {}", config.listen))?;
            let addr = chain_cfg.advertised(swarm.local_addr())?;
            let counters = Arc::new(Counters::default());
            let metrics_l = tokio::net::TcpListener::bind(config.metrics)
                .await
                .with_context(|| format!("metrics endpoint {}", config.metrics))?;
            let metrics_addr = metrics_l.local_addr()?;
            let render_fn = {
                let (c, s) = (counters.clone(), swarm_counters.clone());
                Arc::new(move || render(&c, &s))
            };
            tokio::spawn(datdot_node::prometheus::serve_on(metrics_l, render_fn));
            let signer = keys::resolve(&chain_cfg.key).context("[chain] key")?;
            let me = account(&signer);
            let chain = node::connect_patiently(&chain_cfg.url, &counters.chain_errors).await?;
            let _ = counters.chain.set(chain.health());
            // Records are the chain's: a reset dev chain (new genesis) starts afresh.
            let state = State::open(&state_path, &chain.chain_id())?;
            // Values the whole committee must share are the chain's: how many blocks an
            // audit samples (it refuses other counts) and the block time windows are
            // scheduled with.
            config.samples = from_chain(
                "AuditSamples",
                Some(config.samples),
                chain.audit_samples().await?,
            );
            let block_ms = from_chain("BlockMs", chain_cfg.role.block_ms, chain.block_ms().await?);
            {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "listening {} noise {} signing {}\nmetrics http://{metrics_addr}/metrics\nchain {} as {me}",
                    swarm.local_addr(),
                    hex::encode(swarm.noise_key()),
                    hex::encode(Keypair::from_seed(&ks.signing).public().as_bytes()),
                    chain_cfg.url
                );
                let _ = out.flush();
            }
            let ctx = Arc::new(Ctx {
                chain,
                signer,
                me,
                keypair: Arc::new(Keypair::from_seed(&ks.signing)),
                signing_seed: ks.signing,
                swarm,
                block_ms,
                config,
                limits: Limits::default(),
                state,
                counters,
                epoch: std::time::Instant::now(),
                #[cfg(feature = "byzantine")]
                byzantine: behaviour(byzantine)?,
            });
            let reg = hook::Registration {
                addr: addr.to_string(),
                stake: chain_cfg.stake,
            };
            tokio::select! {
                r = hook::run(ctx, reg) => r?,
                _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
            }
        }
    }
    Ok(())
}

/// The chain's value of a constant the whole committee must share, logged when the file
/// said otherwise.
fn from_chain<T: PartialEq + std::fmt::Display>(what: &str, configured: Option<T>, chain: T) -> T {
    if let Some(configured) = configured
        && configured != chain
    {
        tracing::info!(%configured, %chain, "the chain's {what} overrides the configured value");
    }
    chain
}
