//! The devnet's processes: `datdot-hoster` and `datdot-attestor`, each with its own
//! directory, keystore and log; killed (and reaped) when dropped, so an interrupted
//! devnet leaves no orphans behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// Where the binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `datdot-hoster`.
    pub hoster: PathBuf,
    /// `datdot-attestor`.
    pub attestor: PathBuf,
    /// A `datdot-attestor` built with the test-only `byzantine` feature, if any.
    pub byzantine_attestor: Option<PathBuf>,
}

impl Bins {
    /// The binaries next to this one (a `cargo build` puts them in one directory), or in
    /// `dir`.
    pub fn find(dir: Option<&Path>, byzantine: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()?
                .parent()
                .context("the datdot binary has no directory")?
                .to_path_buf(),
        };
        let (hoster, attestor) = (dir.join("datdot-hoster"), dir.join("datdot-attestor"));
        for b in [&hoster, &attestor] {
            if !b.exists() {
                bail!(
                    "{} not found: build the daemons first (cargo build --release --locked -p datdot-hoster -p datdot-attestor), or pass --bin-dir",
                    b.display()
                );
            }
        }
        Ok(Bins {
            hoster,
            attestor,
            byzantine_attestor: byzantine,
        })
    }
}

/// One running daemon.
#[derive(Debug)]
pub struct Proc {
    /// Its name (`hoster-1`, `attestor-3`).
    pub name: String,
    /// The address it listens on.
    pub listen: SocketAddr,
    /// Its Prometheus endpoint.
    pub metrics: SocketAddr,
    /// Its process id (for CPU/RSS sampling).
    pub pid: u32,
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<bin> --dir <dir> init --listen <listen> --metrics 127.0.0.1:0`, unless `dir` exists.
pub fn init(bin: &Path, dir: &Path, listen: SocketAddr) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let out = Command::new(bin)
        .arg("--dir")
        .arg(dir)
        .args([
            "init",
            "--listen",
            &listen.to_string(),
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} init failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Start `<bin> --dir <dir> run <args>`; its log goes to `dir/run.log`. Blocks until it
/// printed its addresses (the first two stdout lines), then keeps draining stdout.
pub fn start(name: &str, bin: &Path, dir: &Path, args: &[String]) -> anyhow::Result<Proc> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("run.log"))?;
    let mut child = Command::new(bin)
        .arg("--dir")
        .arg(dir)
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut next = || -> anyhow::Result<String> {
        match lines.next() {
            Some(l) => Ok(l?),
            None => bail!(
                "{name} exited at start; see {}",
                dir.join("run.log").display()
            ),
        }
    };
    let first = next()?;
    let second = next()?;
    let listen = first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{name}: unexpected first line {first:?}"))?;
    let metrics = second
        .trim_start_matches("metrics http://")
        .trim_end_matches("/metrics")
        .parse()
        .with_context(|| format!("{name}: unexpected second line {second:?}"))?;
    std::thread::spawn(move || for _ in lines {});
    Ok(Proc {
        name: name.to_string(),
        listen,
        metrics,
        pid,
        child,
    })
}

/// CPU time (user + system, seconds) and resident set size (bytes) of `pid`, from /proc.
pub fn usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &stat[stat.rfind(") ")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((cpu, rss_kb * 1024))
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
