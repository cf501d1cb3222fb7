//! Helpers for the attestor's process tests: a committee of real `datdot-attestor`
//! processes on loopback ports.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_datdot-attestor"))
}

/// A free loopback port (bound then released).
/// A port for a member process to listen on, below the kernel's ephemeral range
/// (32768–60999 here): a port from `bind(0)` is free only until the process binds it,
/// and meanwhile any outgoing connection on the machine may take it as its local port
/// (a CI run lost a member that way: "member 1 printed no line"). Ports come from a
/// counter with a per-process random base in 20000–29999, each checked bindable.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + rand::random::<u16>() % 10_000,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_000, "no free port below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `init` + `info --json` in `dir`: (noise, signing) hex.
pub fn init(dir: &Path, port: u16) -> (String, String) {
    let out = bin()
        .arg("--dir")
        .arg(dir)
        .args([
            "init",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .arg("--dir")
        .arg(dir)
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["noise"].as_str().unwrap().to_string(),
        v["signing"].as_str().unwrap().to_string(),
    )
}

/// One flip's JSON line.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FlipLine {
    pub flip: u64,
    pub outcome: String,
    pub round: u32,
    pub result: Option<String>,
    pub ms_to_result: Option<f64>,
    pub ms_total: f64,
    pub fraud: Vec<(String, String, bool)>,
    pub unresponsive: Vec<String>,
}

/// A committee of attestor directories and a committee file.
pub struct Committee {
    pub dirs: Vec<tempfile::TempDir>,
    pub signing: Vec<String>,
    pub file: PathBuf,
    _root: tempfile::TempDir,
}

impl Committee {
    pub fn new(n: usize) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        let mut members = String::new();
        let mut signing = Vec::new();
        for _ in 0..n {
            let d = tempfile::tempdir().unwrap();
            let port = free_port();
            let (noise, sig) = init(d.path(), port);
            members.push_str(&format!(
                "[[members]]\naddr = \"127.0.0.1:{port}\"\nnoise = \"{noise}\"\nsigning = \"{sig}\"\n"
            ));
            signing.push(sig);
            dirs.push(d);
        }
        let session: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let file = root.path().join("committee.toml");
        std::fs::write(&file, format!("session = \"{session}\"\n{members}")).unwrap();
        Committee {
            dirs,
            signing,
            file,
            _root: root,
        }
    }

    /// Run `rounds` flips in every member's process (members in `byzantine` misbehave);
    /// returns the lines as `[flip][member]`. Bounded: 180 s, then everything is killed.
    pub fn flip(
        &self,
        rounds: u64,
        byzantine: &[(usize, &str)],
        extra: &[&str],
    ) -> Vec<Vec<FlipLine>> {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 1500;
        let mut children = Vec::new();
        for (i, d) in self.dirs.iter().enumerate() {
            let mut cmd = bin();
            cmd.arg("--dir")
                .arg(d.path())
                .arg("flip")
                .arg("--committee")
                .arg(&self.file)
                .args([
                    "--rounds",
                    &rounds.to_string(),
                    "--start-at",
                    &start.to_string(),
                ])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            if let Some((_, b)) = byzantine.iter().find(|(j, _)| *j == i) {
                cmd.args(["--byzantine", b]);
            }
            children.push(cmd.spawn().unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut per_member = Vec::new();
        for c in &mut children {
            let out = c.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            std::thread::spawn(move || {
                let lines: Vec<FlipLine> = BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str(&l).ok())
                    .collect();
                let _ = tx.send(lines);
            });
            per_member.push(rx);
        }
        let mut lines = Vec::new();
        for rx in per_member {
            let left = deadline.saturating_duration_since(Instant::now());
            lines.push(rx.recv_timeout(left).unwrap_or_default());
        }
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        (0..rounds as usize)
            .map(|k| {
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        l.get(k)
                            .cloned()
                            .unwrap_or_else(|| panic!("member {i} printed no line for flip {k}"))
                    })
                    .collect()
            })
            .collect()
    }
}
