//! A listener with admission budgets ([`crate::admit`]): each accepted socket gets its
//! own task; the policy decides which pending handshake or idle session a newcomer
//! evicts (global and per-address bounds); a failed or stalled handshake ends only its
//! task. The accept loop never stops: accept errors (EMFILE under a flood) are retried
//! with backoff. Peer-driven log lines are rate-limited ([`peer_log_allowed`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::admit::Admission;
use crate::conn::{Connection, accept};
use crate::frame::FrameShared;
use crate::identity::NoiseIdentity;
use crate::limits::Limits;
use crate::serve::Counters;

/// Milliseconds since the first call in this process (the clock of
/// [`FrameShared::useful_ms`]).
pub fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let e = EPOCH.get_or_init(Instant::now);
    u64::try_from(e.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether one more peer-driven log line may be written now: at most 20 per 10 s
/// window in the process (a flood of bad peers must not fill the disk); the number
/// suppressed is reported with the next allowed line's window.
pub fn peer_log_allowed() -> bool {
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let w = clock_ms() / 10_000;
    if WINDOW.swap(w, Ordering::Relaxed) != w {
        COUNT.store(0, Ordering::Relaxed);
        let s = SUPPRESSED.swap(0, Ordering::Relaxed);
        if s > 0 {
            warn!("{s} peer log lines suppressed in the last window");
        }
    }
    if COUNT.fetch_add(1, Ordering::Relaxed) < 20 {
        true
    } else {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// The admission policy and how to reach each connection's task.
#[derive(Debug)]
struct Books {
    admission: Admission,
    /// Cancels a connection's task (pending handshake or session).
    kills: HashMap<u64, Arc<Notify>>,
    /// Established sessions' shared state (their last useful work).
    sessions: HashMap<u64, Arc<FrameShared>>,
}

impl Books {
    fn kill(&mut self, id: u64) {
        if let Some(k) = self.kills.remove(&id) {
            k.notify_one();
        }
        self.sessions.remove(&id);
    }

    fn closed(&mut self, id: u64) {
        self.admission.handle_closed(id);
        self.kills.remove(&id);
        self.sessions.remove(&id);
    }
}

fn lock(b: &Mutex<Books>) -> std::sync::MutexGuard<'_, Books> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// A bound listener with the node's persistent Noise identity.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    identity: NoiseIdentity,
    limits: Limits,
    books: Arc<Mutex<Books>>,
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
        let books = Books {
            admission: Admission::new(limits.admit()),
            kills: HashMap::new(),
            sessions: HashMap::new(),
        };
        Ok(Listener {
            tcp,
            books: Arc::new(Mutex::new(books)),
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

    /// Accept forever; for each connection whose handshake succeeds and which the
    /// admission policy admits, run `handler` in its own task (dropped if the
    /// connection is evicted later). Returns only if the listening address cannot be
    /// read at start.
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
                    // EMFILE and friends: back off (10 ms doubling to 1 s) and retry for
                    // as long as it takes; log the 1st, 2nd, 4th, … failure of a streak.
                    failures = failures.saturating_add(1);
                    if failures.is_power_of_two() {
                        warn!("accept failed ({failures} in a row): {e}");
                    }
                    let ms = 10u64 << failures.min(7);
                    tokio::time::sleep(Duration::from_millis(ms.min(1000))).await;
                    continue;
                }
            };
            let kill = Arc::new(Notify::new());
            let id = {
                let mut b = lock(&self.books);
                let (id, evict) = b.admission.handle_accept(peer.ip());
                if let Some(e) = evict {
                    b.kill(e);
                    self.counters
                        .connections_evicted
                        .fetch_add(1, Ordering::Relaxed);
                }
                b.kills.insert(id, kill.clone());
                id
            };
            let identity = self.identity.clone();
            let limits = self.limits.clone();
            let handler = handler.clone();
            let counters = self.counters.clone();
            let books = self.books.clone();
            tokio::spawn(async move {
                let shake = tokio::select! {
                    r = accept(tcp, &identity, &limits) => r,
                    () = kill.notified() => {
                        lock(&books).closed(id);
                        return;
                    }
                };
                let conn = match shake {
                    Ok(conn) => conn,
                    Err(e) => {
                        counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                        if peer_log_allowed() {
                            debug!(%peer, "handshake failed: {e}");
                        }
                        lock(&books).closed(id);
                        return;
                    }
                };
                let shared = conn.shared.clone();
                let now = clock_ms();
                shared.useful_ms.store(now, Ordering::Relaxed);
                let admitted = {
                    let mut b = lock(&books);
                    let Books {
                        admission,
                        sessions,
                        ..
                    } = &mut *b;
                    let useful = |s: u64| {
                        sessions
                            .get(&s)
                            .map_or(0, |f| f.useful_ms.load(Ordering::Relaxed))
                    };
                    match admission.handle_established(id, now, useful) {
                        Ok(evict) => {
                            if let Some(e) = evict {
                                b.kill(e);
                                counters.connections_evicted.fetch_add(1, Ordering::Relaxed);
                            }
                            b.sessions.insert(id, shared);
                            true
                        }
                        Err(_) => {
                            b.closed(id);
                            false
                        }
                    }
                };
                if !admitted {
                    counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                    if peer_log_allowed() {
                        debug!(%peer, "session budget full of busy readers; closing");
                    }
                    return;
                }
                counters.connections_total.fetch_add(1, Ordering::Relaxed);
                counters.connections_open.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = handler(conn) => {}
                    () = kill.notified() => {
                        if peer_log_allowed() {
                            debug!(%peer, "evicted: no useful work");
                        }
                    }
                }
                counters.connections_open.fetch_sub(1, Ordering::Relaxed);
                lock(&books).closed(id);
            });
        }
    }
}
