//! Start-up pieces every daemon binary shares: logging, the runtime, its default
//! directory, and the checks of a `[chain]` section that do not need the chain.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Log to stderr with `RUST_LOG`, or `default` when it is not set. Colours only when
/// stderr is a terminal (and `NO_COLOR` is unset): a daemon's log file carries no
/// escape codes.
pub fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The daemons' runtime: two worker threads (the machines they are sized for).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `$HOME/<name>` (or `./<name>` without a home).
pub fn home_dir(name: &str) -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(name)
}

/// Read a daemon's TOML config file; `init_cmd` is the command that creates it (for
/// the error message). The caller validates what it parsed.
pub fn read_toml<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    init_cmd: &str,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (run `{init_cmd}` first)", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Check a `[chain]` section's common fields: a ws:// or wss:// URL, a key, a stake,
/// and an `advertise` address peers can dial.
pub fn check_chain(
    url: &str,
    key: &str,
    stake: u64,
    advertise: Option<SocketAddr>,
) -> anyhow::Result<()> {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        anyhow::bail!("[chain] url must be a ws:// or wss:// URL, got {url:?}");
    }
    if key.trim().is_empty() {
        anyhow::bail!("[chain] key must be `dev:<name>` or the path of a key file");
    }
    if stake == 0 {
        anyhow::bail!("[chain] stake must be at least 1 token");
    }
    if let Some(a) = advertise
        && (a.ip().is_unspecified() || a.port() == 0)
    {
        anyhow::bail!("[chain] advertise must be an address peers can dial, got {a}");
    }
    Ok(())
}

/// The address to register: `advertise`, else the bound `listen` address if peers can
/// dial it.
pub fn advertised(advertise: Option<SocketAddr>, listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    match advertise {
        Some(a) => Ok(a),
        None if !listen.ip().is_unspecified() => Ok(listen),
        None => anyhow::bail!(
            "listening on {listen}, which peers cannot dial: set [chain] advertise (or --advertise) to the address they reach this node at"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_checks() {
        let l: SocketAddr = "127.0.0.1:7100".parse().unwrap();
        assert_eq!(advertised(None, l).unwrap(), l);
        assert!(advertised(None, "0.0.0.0:7100".parse().unwrap()).is_err());
        check_chain("ws://x:1", "dev:a", 1, None).unwrap();
        assert!(check_chain("http://x", "dev:a", 1, None).is_err());
        assert!(check_chain("ws://x:1", " ", 1, None).is_err());
        assert!(check_chain("ws://x:1", "dev:a", 0, None).is_err());
        assert!(check_chain("ws://x:1", "dev:a", 1, Some("0.0.0.0:1".parse().unwrap())).is_err());
    }
}
