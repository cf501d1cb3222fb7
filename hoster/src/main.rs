//! `datdot-hoster`: keep Hypercore feeds online for datdot and prove it.
//!
//! ```text
//! datdot-hoster init                      # create ~/.datdot-hoster: keystore (0600) + hoster.toml
//! datdot-hoster run                       # serve every stored feed; /metrics for Prometheus
//! datdot-hoster run --chain-url ws://127.0.0.1:8000 --chain-key dev:hoster-1
//!                                         # also register and host what the chain assigns
//! datdot-hoster add-feed <KEY> --from <ADDR> [--peer-key <HEX>]   # fetch a feed, verified
//! datdot-hoster info                      # keys to register, address, stored feeds
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use datdot_hoster::Config;
use datdot_net::Progress;
use datdot_node::chain::ChainFlags;
use datdot_store as store;
use indicatif::{ProgressBar, ProgressStyle};

/// Keep Hypercore feeds online for datdot: store them, serve them to any reader over
/// Noise-encrypted connections (JavaScript Hypercore peers too), and sign a receipt for
/// every block served.
#[derive(Parser, Debug)]
#[command(name = "datdot-hoster", version, about, long_about = None)]
struct Cli {
    /// Hoster directory: keystore, hoster.toml and feeds/.
    #[arg(long, global = true, env = "DATDOT_HOSTER_DIR", default_value_os_t = default_dir())]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create the hoster directory: a new keystore (mode 0600) and a commented hoster.toml.
    Init {
        /// Address readers connect to.
        #[arg(long, default_value = "0.0.0.0:7100")]
        listen: SocketAddr,
        /// Address of the Prometheus /metrics endpoint.
        #[arg(long, default_value = "127.0.0.1:9100")]
        metrics: SocketAddr,
    },
    /// Serve every stored feed until stopped (Ctrl-C). Feeds completed by `add-feed`
    /// meanwhile are picked up within seconds. With a chain (`[chain]` in hoster.toml or
    /// --chain-url/--chain-key): register (or update the registered address and keys),
    /// then fetch every feed the chain assigns to this hoster from its publisher's source
    /// or its other hosters, serve it and confirm hosting on chain.
    Run {
        /// Override `listen` from hoster.toml.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Override `metrics` from hoster.toml.
        #[arg(long)]
        metrics: Option<SocketAddr>,
        #[command(flatten)]
        chain: ChainFlags,
        /// Feeds to accept (default 16); overrides [chain] capacity.
        #[arg(long)]
        capacity: Option<u32>,
    },
    /// Fetch a feed from its publisher or another hoster, verifying every block against
    /// the feed key; resumes where an interrupted fetch stopped. (Without a chain, this
    /// is how a feed is assigned to this hoster.)
    AddFeed {
        /// The feed's public key (64 hex characters).
        key: String,
        /// Address of a peer that has the feed (host:port).
        #[arg(long)]
        from: SocketAddr,
        /// The peer's Noise static key (hex); the connection is refused if it differs.
        #[arg(long)]
        peer_key: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print `verified <INDEX>` on stdout as each block is verified and stored (for
        /// scripts; with --quiet, the only output besides the summary).
        #[arg(long)]
        log_blocks: bool,
    },
    /// Print this hoster's keys (to register on chain), addresses and stored feeds.
    Info,
}

/// Log filter when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info,hypercore=warn,hypercore_protocol=warn,hypercore_handshake=warn,random_access_disk=warn,random_access_memory=warn,random_access_storage=warn";

fn default_dir() -> PathBuf {
    datdot_node::daemon::home_dir(".datdot-hoster")
}

fn main() -> anyhow::Result<()> {
    // The hypercore crates log every call (`#[instrument(ret)]`) at INFO: DEFAULT_LOG keeps
    // them at WARN unless RUST_LOG asks otherwise.
    datdot_node::daemon::init_tracing(DEFAULT_LOG);
    let cli = Cli::parse();
    let rt = datdot_node::daemon::runtime()?;
    rt.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.dir;
    let cfg_path = dir.join(datdot_hoster::CONFIG_FILE);
    match cli.cmd {
        Cmd::Init { listen, metrics } => {
            let config = Config {
                listen,
                metrics,
                ..Config::default()
            };
            datdot_hoster::init(&dir, &config)?;
            let (noise, signing) = datdot_hoster::identities(&dir)?;
            println!("created {}", dir.display());
            println!(
                "  keystore   {} (mode 0600; back it up)",
                dir.join(datdot_hoster::KEYSTORE_FILE).display()
            );
            println!("  config     {}", cfg_path.display());
            println!("  noise key  {}", hex::encode(noise));
            println!("  signing key {}", hex::encode(signing));
            println!(
                "next: datdot-hoster add-feed <KEY> --from <HOST:PORT>, then datdot-hoster run"
            );
        }
        Cmd::Run {
            listen,
            metrics,
            chain,
            capacity,
        } => {
            let mut config = Config::load(&cfg_path)?;
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(m) = metrics {
                config.metrics = m;
            }
            chain.apply(&mut config.chain)?;
            if let Some(n) = capacity {
                let c = config
                    .chain
                    .as_mut()
                    .context("--capacity needs a chain: --chain-url or a [chain] section")?;
                c.role.capacity = n;
            }
            config.validate()?;
            let (noise, signing) = datdot_hoster::identities(&dir)?;
            let chain = config.chain.as_ref().map(|c| c.url.clone());
            let run = datdot_hoster::run(&dir, config, |l, m| {
                // A server must outlive whoever reads its stdout: `println!` would panic on a
                // closed pipe (EPIPE) and take the hoster down, so write and ignore errors.
                let chain_line = match &chain {
                    Some(url) => format!("chain {url}: registering, then hosting what it assigns"),
                    None => "no chain configured: serving the stored feeds".to_string(),
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "listening {l} noise {} signing {}\nmetrics http://{m}/metrics\n{chain_line}",
                    hex::encode(noise),
                    hex::encode(signing)
                );
                let _ = out.flush();
            });
            tokio::select! {
                r = run => r?,
                _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
            }
        }
        Cmd::AddFeed {
            key,
            from,
            peer_key,
            quiet,
            log_blocks,
        } => {
            let config = Config::load(&cfg_path)?;
            let key = store::parse_key(&key)?;
            let peer_key = peer_key
                .map(|k| store::parse_key(&k).context("--peer-key"))
                .transpose()?;
            let bar = if quiet {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} blocks {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut on_progress = |p: Progress| match p {
                Progress::Length { todo, .. } => bar.set_length(todo),
                Progress::Block { index, .. } => {
                    bar.inc(1);
                    if log_blocks {
                        println!("verified {index}");
                    }
                }
                _ => {}
            };
            let r =
                datdot_hoster::add_feed(&dir, &config, key, from, peer_key, &mut on_progress).await;
            bar.finish_and_clear();
            let r = r?;
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            println!(
                "feed {} complete: length {}, fetched {} blocks ({} bytes, {:.1} MiB/s, all verified), {} already stored, {} receipts",
                hex::encode(key),
                r.length,
                r.fetched,
                r.bytes,
                r.bytes as f64 / secs / (1024.0 * 1024.0),
                r.already,
                r.receipts
            );
        }
        Cmd::Info => {
            let config = Config::load(&cfg_path)?;
            let (noise, signing) = datdot_hoster::identities(&dir)?;
            println!("dir         {}", dir.display());
            println!("listen      {}", config.listen);
            println!("metrics     {}", config.metrics);
            match &config.chain {
                Some(c) => println!("chain       {} as {}", c.url, c.key),
                None => println!("chain       none (add a [chain] section to register)"),
            }
            println!("noise key   {}", hex::encode(noise));
            println!("signing key {}", hex::encode(signing));
            let feeds = dir.join("feeds");
            for e in std::fs::read_dir(&feeds).into_iter().flatten().flatten() {
                let done = e.path().join(store::COMPLETE);
                let state = std::fs::read_to_string(&done)
                    .map(|l| format!("complete, length {}", l.trim()))
                    .unwrap_or_else(|_| "partial (run add-feed again to resume)".into());
                println!("feed        {} {state}", e.file_name().to_string_lossy());
            }
        }
    }
    Ok(())
}
