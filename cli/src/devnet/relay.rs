//! A TCP relay in front of a hoster, for the `slow` and `trickle` scenarios: the hoster
//! registers the relay's address, so every reader (attestors included) reaches it
//! through the relay. Reader → hoster bytes pass untouched; hoster → reader bytes are
//! shaped. The hoster process itself is the unmodified binary.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the hoster's answers are shaped.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Each chunk is held `delay` before it is sent, and the stream is capped at
    /// `bytes_per_sec`.
    Slow {
        /// Added latency per chunk.
        delay: Duration,
        /// Bandwidth cap.
        bytes_per_sec: u64,
    },
    /// After the first `free` bytes (the handshake gets through), one byte per `every`.
    Trickle {
        /// Bytes passed at full speed.
        free: usize,
        /// Gap between later bytes.
        every: Duration,
    },
}

/// Start a relay to `to` on a loopback port; it runs until the runtime ends.
pub async fn start(to: SocketAddr, shape: Shape) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let Ok(b) = TcpStream::connect(to).await else {
                continue;
            };
            let _ = a.set_nodelay(true);
            let _ = b.set_nodelay(true);
            let (mut ar, mut aw) = a.into_split();
            let (mut br, mut bw) = b.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut ar, &mut bw).await;
                let _ = bw.shutdown().await;
            });
            match shape {
                Shape::Slow {
                    delay,
                    bytes_per_sec,
                } => {
                    // A delay line: each chunk leaves `delay` after it arrived (so the
                    // latency is added once, not per chunk), paced to the cap.
                    let (tx, mut rx) =
                        tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match br.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let due = tokio::time::Instant::now() + delay;
                            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                                break;
                            }
                        }
                    });
                    tokio::spawn(async move {
                        while let Some((due, bytes)) = rx.recv().await {
                            tokio::time::sleep_until(due).await;
                            for chunk in bytes.chunks(4096) {
                                if aw.write_all(chunk).await.is_err() {
                                    return;
                                }
                                let pace = chunk.len() as f64 / bytes_per_sec.max(1) as f64;
                                tokio::time::sleep(Duration::from_secs_f64(pace)).await;
                            }
                        }
                        let _ = aw.shutdown().await;
                    });
                }
                Shape::Trickle { free, every } => {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        let mut sent = 0usize;
                        loop {
                            let n = match br.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            for &byte in &buf[..n] {
                                if sent >= free {
                                    tokio::time::sleep(every).await;
                                }
                                if aw.write_all(&[byte]).await.is_err() {
                                    return;
                                }
                                sent += 1;
                            }
                        }
                        let _ = aw.shutdown().await;
                    });
                }
            }
        }
    });
    Ok(addr)
}
