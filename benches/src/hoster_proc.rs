//! A real `datdot-hoster run` process holding a feed, for the bench binaries that
//! measure it from outside (`hoster_memory`, `hoster_hostile`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use datdot_net::{Counters, Limits, Listener, NoiseIdentity, ServeConfig, SingleFeed, serve};
use datdot_protocol::identity::Keypair;
use hypercore::{HypercoreBuilder, Storage};

/// Block size of the bench feeds.
pub const SIZE: usize = 64 * 1024;

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 if unreadable.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A running hoster serving one feed of `blocks` × [`SIZE`].
#[derive(Debug)]
pub struct Hoster {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its Noise key.
    pub noise: [u8; 32],
    /// The feed it serves.
    pub key: [u8; 32],
    /// Its directory (removed on drop).
    pub dir: PathBuf,
}

impl Drop for Hoster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Build a feed in this process, serve it on loopback, let `bin` (`datdot-hoster`)
/// fetch it with `add-feed`, then start `bin run` with its stderr going to `stderr`.
/// Call inside a tokio runtime (the publisher's listener is a task of it).
pub async fn start(bin: &str, blocks: u64, stderr: Stdio) -> Result<Hoster> {
    let dir = std::env::temp_dir().join(format!(
        "datdot-bench-hoster-{}-{}",
        std::process::id(),
        blocks
    ));
    let w = HypercoreBuilder::new(Storage::new_memory().await?)
        .build()
        .await?;
    let mut i = 0u64;
    while i < blocks {
        let n = 64.min(blocks - i);
        let batch: Vec<Vec<u8>> = (i..i + n).map(|k| vec![(k % 251) as u8; SIZE]).collect();
        w.append_batch(&batch).await?;
        i += n;
    }
    let key = w.key_pair().public.to_bytes();
    let counters = Arc::new(Counters::default());
    let l = Listener::bind(
        "127.0.0.1:0".parse()?,
        NoiseIdentity::generate(),
        Limits::default(),
        counters.clone(),
    )
    .await?;
    let (paddr, pkey) = (l.local_addr()?, l.public_key());
    let src = Arc::new(SingleFeed::new(key, w));
    let cfg = ServeConfig {
        signer: Arc::new(Keypair::from_seed(&[1; 32])),
        chain: tokio::sync::watch::channel([0; 32]).1,
        receipt_every: 100,
        counters,
    };
    tokio::spawn(l.run(move |c| {
        let (src, cfg) = (src.clone(), cfg.clone());
        async move {
            let _ = serve(c, src.as_ref(), &cfg).await;
        }
    }));

    let dirs = |c: &mut Command| {
        c.arg("--dir").arg(&dir);
    };
    let mut init = Command::new(bin);
    dirs(&mut init);
    let st = init
        .args([
            "init",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()?;
    ensure!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let t = Instant::now();
    let mut add = Command::new(bin);
    dirs(&mut add);
    let st = add
        .args(["add-feed", &hex::encode(key), "--from", &paddr.to_string()])
        .args(["--peer-key", &hex::encode(pkey), "--quiet"])
        .output()?;
    ensure!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    eprintln!(
        "add-feed of {} MiB took {:.1} s",
        (blocks * SIZE as u64) >> 20,
        t.elapsed().as_secs_f64()
    );
    let mut run = Command::new(bin);
    dirs(&mut run);
    let mut child = run
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("the hoster printed nothing")??;
    let words: Vec<&str> = first.split_whitespace().collect();
    let addr: SocketAddr = words.get(1).context("address")?.parse()?;
    let noise: [u8; 32] = hex::decode(words.get(3).context("noise key")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("noise key length"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(Hoster {
        child,
        addr,
        noise,
        key,
        dir,
    })
}
