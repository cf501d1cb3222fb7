//! Shared fixtures for the loopback tests.
#![allow(dead_code, clippy::unwrap_used)]

/// The chain the test servers sign receipts for.
#[allow(dead_code)] // not every test binary names it
pub const CHAIN: [u8; 32] = [0x33; 32];

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datdot_net::{
    Counters, FeedSource, Limits, Listener, NoiseIdentity, ServeConfig, ServeSummary, SessionError,
    serve,
};
use datdot_protocol::identity::Keypair;
use hypercore::Hypercore;

/// A feed source holding a list of cores.
type FeedList = Vec<([u8; 32], Hypercore)>;

#[derive(Default, Clone)]
pub struct Feeds(pub Arc<Mutex<FeedList>>);

impl FeedSource for Feeds {
    fn find(&self, dk: &[u8; 32]) -> Option<([u8; 32], Hypercore)> {
        let feeds = self.0.lock().unwrap();
        feeds
            .iter()
            .find(|(k, _)| &hypercore_protocol::discovery_key(k) == dk)
            .cloned()
    }
}

#[allow(unused_imports)] // not every test binary uses each
pub use datdot_testkit::{block, key_of, reader, writer};

pub fn test_limits() -> Limits {
    Limits {
        // Long enough for a loaded CI machine, short enough for the stall tests.
        handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        progress_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub key: [u8; 32],
    pub signer: Arc<Keypair>,
    pub counters: Arc<Counters>,
    pub sessions: tokio::sync::mpsc::Receiver<Result<ServeSummary, SessionError>>,
}

/// Start a hoster-like server on loopback serving `feeds`.
pub async fn server(feeds: Feeds, limits: Limits) -> Server {
    let identity = NoiseIdentity::from_seed([9; 32]);
    let counters = Arc::new(Counters::default());
    let listener = Listener::bind(
        "127.0.0.1:0".parse().unwrap(),
        identity,
        limits,
        counters.clone(),
    )
    .await
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let key = listener.public_key();
    let signer = Arc::new(Keypair::from_seed(&[5; 32]));
    let cfg = ServeConfig {
        signer: signer.clone(),
        chain: tokio::sync::watch::channel(CHAIN).1,
        receipt_every: 100,
        counters: counters.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(listener.run(move |conn| {
        let feeds = feeds.clone();
        let cfg = cfg.clone();
        let tx = tx.clone();
        async move {
            let r = serve(conn, &feeds, &cfg).await;
            let _ = tx.try_send(r);
        }
    }));
    Server {
        addr,
        key,
        signer,
        counters,
        sessions: rx,
    }
}

/// A raw client of `addr`: the Noise handshake done by hand (`hypercore_handshake`'s
/// `Cipher` over our framing), so a test can then send any plaintext frame. Returns the
/// cipher and the framing's shared state.
pub async fn raw_handshake(
    addr: SocketAddr,
) -> (
    hypercore_handshake::Cipher,
    Arc<datdot_net::frame::FrameShared>,
) {
    use futures::{SinkExt, StreamExt};
    use hypercore_handshake::{Cipher, HandshakePattern};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let shared = Arc::new(datdot_net::frame::FrameShared::default());
    let framed = datdot_net::frame::Framed::new(
        tcp,
        shared.clone(),
        1 << 20,
        64,
        1 << 20,
        datdot_net::frame::READ_CHUNK,
    );
    let mut cipher =
        Cipher::new_dht_init_with_pattern(Some(Box::new(framed)), HandshakePattern::XX, None, &[])
            .unwrap();
    for _ in 0..500 {
        if cipher.ready() {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), cipher.flush()).await;
        let _ = tokio::time::timeout(Duration::from_millis(20), cipher.next()).await;
    }
    assert!(cipher.ready(), "handshake with the server completes");
    (cipher, shared)
}

/// A server (default test limits) of one memory feed of `n` blocks of `size` bytes,
/// and that feed's key.
pub async fn serve_feed(n: u64, size: usize) -> (Server, [u8; 32]) {
    let w = writer(n, size, None).await;
    let key = key_of(&w);
    let feeds = Feeds::default();
    feeds.0.lock().unwrap().push((key, w));
    (server(feeds, test_limits()).await, key)
}
