//! A listener with a connection limit and a handshake deadline: each accepted socket
//! gets its own task; a socket over the limit is closed at once; a failed or stalled
//! handshake ends only that task. The accept loop itself never stops on a peer's fault.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::conn::{Connection, accept};
use crate::identity::NoiseIdentity;
use crate::limits::Limits;
use crate::serve::Counters;

/// A bound listener with the node's persistent Noise identity.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    identity: NoiseIdentity,
    limits: Limits,
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl Listener {
    /// Bind `addr` (port 0 for any).
    pub async fn bind(
        addr: SocketAddr,
        identity: NoiseIdentity,
        limits: Limits,
        counters: Arc<Counters>,
    ) -> std::io::Result<Self> {
        let limits = limits
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tcp = TcpListener::bind(addr).await?;
        Ok(Listener {
            tcp,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            identity,
            limits,
            counters,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Our static key (what dialers pin).
    pub fn public_key(&self) -> [u8; 32] {
        self.identity.public()
    }

    /// Accept forever; for each connection whose handshake succeeds, run `handler` in
    /// its own task. Returns only if accepting itself fails persistently.
    pub async fn run<F, Fut>(self, handler: F) -> std::io::Result<()>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        info!(addr = %self.tcp.local_addr()?, "listening");
        let mut failures = 0u32;
        loop {
            let (tcp, peer) = match self.tcp.accept().await {
                Ok(x) => {
                    failures = 0;
                    x
                }
                Err(e) => {
                    // EMFILE and friends: back off, give up after a bounded streak.
                    failures += 1;
                    warn!("accept failed ({failures}): {e}");
                    if failures > 100 {
                        return Err(e);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.counters
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                debug!(%peer, "connection limit reached; closing");
                drop(tcp);
                continue;
            };
            let identity = self.identity.clone();
            let limits = self.limits.clone();
            let handler = handler.clone();
            let counters = self.counters.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match accept(tcp, &identity, &limits).await {
                    Ok(conn) => {
                        counters.connections_total.fetch_add(1, Ordering::Relaxed);
                        counters.connections_open.fetch_add(1, Ordering::Relaxed);
                        handler(conn).await;
                        counters.connections_open.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                        info!(%peer, "handshake failed: {e}");
                    }
                }
            });
        }
    }
}
