//! `datdot`: the command line for publishers, chain users and operators.
//!
//! ```text
//! datdot devnet [--scenario honest|lossy|corrupt|slow|trickle|byzantine-attestor] [--hosters 3] [--attestors 10]
//!               [--feed-size 8MiB] [--duration 3m] [--keep] [--until-outcome]
//! datdot feed create DIR --size 64MiB
//! datdot publish DIR --replicas 3 --min-throughput 1MiB/s --max-p99 200ms --min-availability 99% --price 1 --duration 100
//! datdot reports [--hoster dev:hoster-1] [--feed 0] [--last 20] [--json]
//! datdot select --min-throughput 20MiB/s --max-p99 50ms --min-availability 99% [--json]
//! datdot status [--key dev:attestor-1] [--json]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datdot_chain_client::{ChainClient, ContractState, PlanTerms, account, endpoint, keys};
use datdot_cli::devnet::{self, Bins, Scenario};
use datdot_cli::feed::LocalFeed;
use datdot_cli::{query, units};
use datdot_protocol::identity::Keypair;
use datdot_protocol::metrics::Sla;

/// Publish Hypercore feeds to hosters audited by datdot, query their reports, pick
/// hosters by SLA, and run a local devnet of the whole system.
#[derive(Parser, Debug)]
#[command(name = "datdot", version, about, long_about = None)]
struct Cli {
    /// Chain node (ws:// URL).
    #[arg(
        long,
        global = true,
        env = "DATDOT_CHAIN_URL",
        default_value = "ws://127.0.0.1:8000"
    )]
    chain_url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Bring up a local devnet on 127.0.0.1 (chain, publisher, hosters, attestors as
    /// separate processes), publish a feed, show challenges live and a summary per hoster.
    Devnet {
        /// What goes wrong (default: nothing).
        #[arg(long, value_enum, default_value_t = Scenario::Honest)]
        scenario: Scenario,
        /// Hosters (K).
        #[arg(long, default_value_t = 3)]
        hosters: usize,
        /// Attestors (M).
        #[arg(long, default_value_t = 10)]
        attestors: usize,
        /// Size of the generated feed (e.g. 8MiB).
        #[arg(long, default_value = "8MiB", value_parser = units::parse_size)]
        feed_size: u64,
        /// How long to watch challenges after publishing (e.g. 3m, 90s).
        #[arg(long, default_value = "3m", value_parser = units::parse_duration)]
        duration: Duration,
        /// The plan's SLA: minimum throughput (e.g. 1MiB/s).
        #[arg(long, default_value = "1MiB/s", value_parser = units::parse_rate)]
        min_throughput: u64,
        /// The plan's SLA: maximum p99 latency (e.g. 200ms; a loaded machine measures its
        /// own queueing too).
        #[arg(long, default_value = "200ms", value_parser = units::parse_duration)]
        max_p99: Duration,
        /// Stop as soon as the scenario's outcome is reached.
        #[arg(long)]
        until_outcome: bool,
        /// Leave everything running after the duration (until Ctrl-C).
        #[arg(long)]
        keep: bool,
        /// Directory for the chain, the feed and every process (wiped at start).
        #[arg(long, default_value = "target/devnet-run")]
        dir: PathBuf,
        /// Port of the dev chain started here.
        #[arg(long, default_value_t = 8000)]
        chain_port: u16,
        /// Use this running chain instead of starting one.
        #[arg(long)]
        use_chain: Option<String>,
        /// The script that starts the dev chain.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/devnet-chain"))]
        chain_script: PathBuf,
        /// Where datdot-hoster and datdot-attestor are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// A datdot-attestor built with the test-only `byzantine` feature (byzantine-attestor scenario).
        #[arg(long)]
        byzantine_bin: Option<PathBuf>,
        /// The summary as JSON (on stdout, after the progress lines).
        #[arg(long)]
        json: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Create a feed of generated data (a real Hypercore on disk) to publish.
    Feed {
        #[command(subcommand)]
        cmd: FeedCmd,
    },
    /// Publish a feed (a directory made by `datdot feed create`) with a hosting plan;
    /// serves it to the assigned hosters until they all confirmed.
    Publish {
        /// The feed directory.
        feed: PathBuf,
        /// Chain account paying for the plan (`dev:<name>` or a 0600 key file).
        #[arg(long, default_value = "dev:publisher-1")]
        key: String,
        /// Hosters to keep it.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// SLA: minimum throughput (e.g. 1MiB/s).
        #[arg(long, default_value = "1MiB/s", value_parser = units::parse_rate)]
        min_throughput: u64,
        /// SLA: maximum p99 latency (e.g. 200ms).
        #[arg(long, default_value = "200ms", value_parser = units::parse_duration)]
        max_p99: Duration,
        /// SLA: minimum availability (e.g. 99%).
        #[arg(long, default_value = "99%", value_parser = units::parse_ppm)]
        min_availability: u32,
        /// Price per hoster per passed period, in tokens.
        #[arg(long, default_value = "1", value_parser = units::parse_tokens)]
        price: u128,
        /// Periods (challenges) per hoster the plan pays for.
        #[arg(long, default_value_t = 100)]
        duration: u32,
        /// Address to serve the feed on while hosters fetch it.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Verdict history with the committee's median metrics.
    Reports {
        /// Only this hoster (dev:<name>, key file or SS58 address).
        #[arg(long)]
        hoster: Option<String>,
        /// Only this feed id.
        #[arg(long)]
        feed: Option<u64>,
        /// The last N.
        #[arg(long, default_value_t = 20)]
        last: usize,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hosters whose recent performance meets an SLA, best first.
    Select {
        /// Minimum throughput (e.g. 20MiB/s).
        #[arg(long, default_value = "0", value_parser = units::parse_rate)]
        min_throughput: u64,
        /// Maximum p99 latency (e.g. 50ms).
        #[arg(long, default_value = "1h", value_parser = units::parse_duration)]
        max_p99: Duration,
        /// Minimum availability (e.g. 99%).
        #[arg(long, default_value = "0%", value_parser = units::parse_ppm)]
        min_availability: u32,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Chain head, an account's balance and stake, open challenges.
    Status {
        /// The account (dev:<name>, key file or SS58 address).
        #[arg(long)]
        key: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum FeedCmd {
    /// Create DIR holding a new feed of generated data.
    Create {
        /// The directory.
        dir: PathBuf,
        /// Its size (e.g. 64MiB).
        #[arg(long, default_value = "8MiB", value_parser = units::parse_size)]
        size: u64,
    },
}

const DEFAULT_LOG: &str = "warn,datdot_cli=info";

fn main() -> std::process::ExitCode {
    datdot_node::daemon::init_tracing(DEFAULT_LOG);
    let cli = Cli::parse();
    let rt = match datdot_node::daemon::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(async_main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<ChainClient> {
    ChainClient::connect(url).await.with_context(|| {
        format!("cannot reach the chain at {url}: start one (scripts/devnet-chain start, or datdot devnet --keep) or pass --chain-url")
    })
}

async fn async_main(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.cmd {
        Cmd::Devnet {
            scenario,
            hosters,
            attestors,
            feed_size,
            duration,
            min_throughput,
            max_p99,
            until_outcome,
            keep,
            dir,
            chain_port,
            use_chain,
            chain_script,
            bin_dir,
            byzantine_bin,
            json,
            quiet,
        } => {
            anyhow::ensure!(
                (1..=16).contains(&hosters),
                "--hosters must be 1..=16 (the dev chain funds hoster-1..16)"
            );
            anyhow::ensure!(
                (3..=32).contains(&attestors),
                "--attestors must be 3..=32 (a committee needs 3; the dev chain funds attestor-1..32)"
            );
            let (tx, rx) = tokio::sync::watch::channel(false);
            // Ctrl-C or SIGTERM: stop watching, make the summary, stop every process.
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                let terminated = async {
                    match term.as_mut() {
                        Some(t) => {
                            t.recv().await;
                        }
                        None => futures_pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    () = terminated => {}
                }
                let _ = tx.send(true);
            });
            let opts = devnet::Opts {
                dir,
                hosters,
                attestors,
                feed_size,
                duration,
                sla: devnet::Sla {
                    min_throughput_bps: min_throughput,
                    max_p99_latency_us: u64::try_from(max_p99.as_micros()).unwrap_or(u64::MAX),
                },
                until_outcome,
                keep,
                scenario,
                chain_url: use_chain,
                chain_port,
                chain_script,
                bins: Bins::find(bin_dir.as_deref(), byzantine_bin)?,
                quiet,
            };
            if !quiet {
                println!(
                    "datdot devnet, scenario {scenario:?}: {}",
                    scenario.expectation()
                );
            }
            let s = devnet::run(opts, rx).await?;
            print!("{}", s.text);
            if json {
                println!("{}", serde_json::to_string_pretty(&s.json)?);
            }
            Ok(if s.outcome.reached {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            })
        }
        Cmd::Feed {
            cmd: FeedCmd::Create { dir, size },
        } => {
            let f = LocalFeed::create(&dir, size, |done, total| {
                if done == total || done % 1024 == 0 {
                    eprint!("\r{done}/{total} blocks");
                }
            })
            .await?;
            eprintln!();
            println!(
                "feed {} created in {}: {} blocks, {}",
                hex::encode(f.key),
                dir.display(),
                f.length(),
                units::size(size)
            );
            println!("next: datdot publish {}", dir.display());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Publish {
            feed,
            key,
            replicas,
            min_throughput,
            max_p99,
            min_availability,
            price,
            duration,
            listen,
        } => {
            let chain = connect(&cli.chain_url).await?;
            let signer = keys::resolve(&key).context("--key")?;
            let f = LocalFeed::open(&feed).await?;
            let source_signer = Keypair::from_seed(&rand_seed());
            let signing = *source_signer.public().as_bytes();
            let (addr, noise) = f.serve(listen, source_signer).await?;
            anyhow::ensure!(
                !addr.ip().is_unspecified(),
                "--listen must be an address hosters can dial"
            );
            let plan = PlanTerms {
                replicas,
                sla: Sla {
                    min_throughput_bps: min_throughput,
                    max_p99_latency_us: u64::try_from(max_p99.as_micros()).unwrap_or(u64::MAX),
                    min_availability_ppm: min_availability,
                },
                price_per_period: price,
                periods: duration,
            };
            let p = chain
                .publish(
                    &signer,
                    f.key,
                    f.signed_root().await?,
                    plan,
                    endpoint(&addr.to_string(), noise, signing),
                )
                .await?;
            println!(
                "published feed {} ({} blocks) as feed id {}: escrow {} tokens, {} hosters assigned; serving it on {addr} until they confirm",
                hex::encode(f.key),
                f.length(),
                p.feed,
                units::tokens(p.escrow as i128),
                p.contracts.len()
            );
            for (c, h) in &p.contracts {
                loop {
                    match chain.contract(*c).await?.map(|c| c.state) {
                        Some(ContractState::Active) => {
                            println!("  {} confirmed (contract {c})", query::name(h));
                            break;
                        }
                        Some(ContractState::Pending { .. }) => {
                            tokio::time::sleep(Duration::from_secs(1)).await
                        }
                        other => {
                            println!(
                                "  contract {c} of {}: {other:?} (the chain replaces a hoster that does not confirm)",
                                query::name(h)
                            );
                            break;
                        }
                    }
                }
            }
            println!(
                "every assigned hoster holds the feed; `datdot reports --feed {}` shows its audits",
                p.feed
            );
            let _ = account(&signer);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Reports {
            hoster,
            feed,
            last,
            json,
        } => {
            let chain = connect(&cli.chain_url).await?;
            let hoster = hoster.as_deref().map(query::parse_account).transpose()?;
            print!(
                "{}",
                query::reports(&chain, hoster, feed, last, json).await?
            );
            if json {
                println!();
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Select {
            min_throughput,
            max_p99,
            min_availability,
            json,
        } => {
            let chain = connect(&cli.chain_url).await?;
            let sla = Sla {
                min_throughput_bps: min_throughput,
                max_p99_latency_us: u64::try_from(max_p99.as_micros()).unwrap_or(u64::MAX),
                min_availability_ppm: min_availability,
            };
            print!("{}", query::select(&chain, &sla, json).await?);
            if json {
                println!();
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Cmd::Status { key, json } => {
            let chain = connect(&cli.chain_url).await?;
            let me = key.as_deref().map(query::parse_account).transpose()?;
            print!("{}", query::status(&chain, me, json).await?);
            if json {
                println!();
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

async fn futures_pending() {
    std::future::pending::<()>().await
}

fn rand_seed() -> [u8; 32] {
    use rand::RngCore;
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}
