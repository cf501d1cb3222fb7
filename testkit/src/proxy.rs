//! A TCP proxy on 127.0.0.1 that a test can cut: every open connection is closed and
//! new ones are refused (accepted and dropped) until it is restored. For chain RPC
//! outages: point a client at the proxy instead of the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy to one target; stopped when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    epoch: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listen on 127.0.0.1 (any port) and forward each connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (epoch, rx) = watch::channel(0u64);
        let task = tokio::spawn({
            let up = up.clone();
            async move {
                while let Ok((mut client, _)) = l.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: refused
                    }
                    let mut rx = rx.clone();
                    let born = *rx.borrow();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = rx.wait_for(|e| *e != born) => {}
                        }
                    });
                }
            }
        });
        Ok(Proxy {
            addr,
            up,
            epoch,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every open connection and refuse new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forward new connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.epoch.send_modify(|e| *e += 1);
    }
}
