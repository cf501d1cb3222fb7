//! Start-up pieces every daemon binary shares: logging, the runtime, its default
//! directory, its config file.

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
