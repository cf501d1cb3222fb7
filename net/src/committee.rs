//! One committee link: TCP, a cleartext preamble, a mutual Noise handshake
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2b`, both static keys persistent and registered on
//! chain), then length-prefixed encrypted messages.
//!
//! ```text
//! initiator -> responder  "datdot/committee/2" (18 B)                          cleartext
//! then, each way          u16 BE length || Noise message (≤ 65,535 B)          handshake, then transport
//! transport plaintext     a byte stream of u32 LE length || message
//! ```
//!
//! The prologue is `"datdot/v1/committee"`. A link is between two nodes, not for one
//! session: the committee swarm ([`crate::swarm`]) carries every session the two share
//! over it and checks membership per message. The static keys are the X25519 forms of the
//! ed25519 Noise keys registered on chain (the birational map libsodium's
//! `crypto_sign_ed25519_{pk,sk}_to_curve25519` use): one registered key serves the
//! Hypercore secret-stream (hosters, JS peers) and this channel. Hypercore's own
//! handshake crate cannot be used here: its initiator always generates a fresh static
//! key (DESIGN §12.6), and committee members must prove theirs both ways.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use snow::params::NoiseParams;
use snow::{HandshakeState, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2b";
/// The preamble's magic.
pub const MAGIC: &[u8; 18] = b"datdot/committee/2";
/// Largest Noise message.
const MAX_NOISE: usize = 65_535;
/// Largest plaintext in one Noise transport message (16 B tag).
const MAX_PLAIN: usize = MAX_NOISE - 16;

/// Why a committee connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// Noise failed (bad key, bad MAC, bad message).
    #[error("noise: {0}")]
    Noise(String),
    /// The peer spoke something else, or is not whom we expected.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer sent a frame over the limit.
    #[error("frame of {0} bytes exceeds the limit")]
    Oversized(usize),
}

fn noise(e: snow::Error) -> LinkError {
    LinkError::Noise(e.to_string())
}

/// A node's static key for committee links.
#[derive(Clone)]
pub struct StaticKey {
    secret: [u8; 32],
    /// X25519 public key.
    pub public: [u8; 32],
    /// The registered ed25519 Noise key it is derived from.
    pub registered: [u8; 32],
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticKey({})", hex::encode(&self.registered[..8]))
    }
}

impl StaticKey {
    /// From the keystore's Noise seed (the one whose ed25519 public key is registered).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let sk = SigningKey::from_bytes(seed);
        StaticKey {
            secret: sk.to_scalar_bytes(),
            public: sk.verifying_key().to_montgomery().to_bytes(),
            registered: sk.verifying_key().to_bytes(),
        }
    }
}

/// The X25519 form of a registered ed25519 Noise key (`None` for a key that is not a
/// curve point or has small order; the chain refuses those at registration).
pub use datdot_protocol::identity::x25519_of;

fn params() -> NoiseParams {
    PATTERN.parse().expect("a valid Noise pattern name")
}

/// The Noise prologue.
pub const PROLOGUE: &[u8] = b"datdot/v1/committee";

async fn write_frame(w: &mut OwnedWriteHalf, msg: &[u8]) -> Result<(), LinkError> {
    let len = u16::try_from(msg.len()).map_err(|_| LinkError::Oversized(msg.len()))?;
    let mut buf = Vec::with_capacity(2 + msg.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    w.write_all(&buf).await?;
    Ok(())
}

async fn read_frame(r: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> Result<(), LinkError> {
    let len = r.read_u16().await? as usize;
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(())
}

/// An established, authenticated committee link, split for a reader and a writer task.
#[derive(Debug)]
pub struct Link {
    /// Receiving half.
    pub rx: LinkRx,
    /// Sending half.
    pub tx: LinkTx,
    /// The peer's X25519 static key (proven in the handshake).
    pub remote: [u8; 32],
}

/// The receiving half of a [`Link`].
pub struct LinkRx {
    r: BufReader<OwnedReadHalf>,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    frame: Vec<u8>,
    plain: Vec<u8>,
    /// Decrypted bytes not yet consumed as whole messages.
    pending: Vec<u8>,
    max_msg: usize,
}

/// The sending half of a [`Link`].
pub struct LinkTx {
    w: OwnedWriteHalf,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LinkRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkRx")
    }
}
impl std::fmt::Debug for LinkTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTx")
    }
}

impl LinkRx {
    /// The next whole message (at most `max_msg` bytes); `Ok(None)` on a clean close.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        loop {
            if let Some(msg) = take_message(&mut self.pending, self.max_msg)? {
                return Ok(Some(msg));
            }
            match read_frame(&mut self.r, &mut self.frame).await {
                Ok(()) => {}
                Err(LinkError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            self.plain.resize(MAX_NOISE, 0);
            let n = self
                .state
                .read_message(self.nonce, &self.frame, &mut self.plain)
                .map_err(noise)?;
            self.nonce += 1;
            self.pending.extend_from_slice(&self.plain[..n]);
        }
    }
}

impl LinkTx {
    /// Send one message (split over as many Noise messages as it needs).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), LinkError> {
        let len = u32::try_from(msg.len()).map_err(|_| LinkError::Oversized(msg.len()))?;
        let mut stream = Vec::with_capacity(4 + msg.len());
        stream.extend_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(msg);
        let mut out = Vec::with_capacity(stream.len() + 64);
        for chunk in stream.chunks(MAX_PLAIN) {
            self.buf.resize(MAX_NOISE, 0);
            let n = self
                .state
                .write_message(self.nonce, chunk, &mut self.buf)
                .map_err(noise)?;
            self.nonce += 1;
            out.extend_from_slice(&(n as u16).to_be_bytes());
            out.extend_from_slice(&self.buf[..n]);
        }
        self.w.write_all(&out).await?;
        Ok(())
    }
}

/// Into transport mode. `r` keeps whatever it buffered past the handshake (the peer may
/// send its first message right behind its last handshake message).
/// The next whole message (`u32 LE length || bytes`) at the front of `pending`, if it is
/// all there; a length over `max` is refused before anything is buffered for it.
pub fn take_message(pending: &mut Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, LinkError> {
    if pending.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
    if len > max {
        return Err(LinkError::Oversized(len));
    }
    if pending.len() < 4 + len {
        return Ok(None);
    }
    let msg = pending[4..4 + len].to_vec();
    pending.drain(..4 + len);
    Ok(Some(msg))
}

fn split(
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    hs: HandshakeState,
    max_msg: usize,
) -> Result<Link, LinkError> {
    let remote: [u8; 32] = hs
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| LinkError::Noise("no remote static key".into()))?;
    let state = Arc::new(hs.into_stateless_transport_mode().map_err(noise)?);
    Ok(Link {
        rx: LinkRx {
            r,
            state: state.clone(),
            nonce: 0,
            frame: Vec::new(),
            plain: Vec::new(),
            pending: Vec::new(),
            max_msg,
        },
        tx: LinkTx {
            w,
            state,
            nonce: 0,
            buf: Vec::new(),
        },
        remote,
    })
}

/// The XX handshake state with our static key and the prologue.
fn handshake(key: &StaticKey, initiator: bool) -> Result<HandshakeState, LinkError> {
    let b = snow::Builder::new(params())
        .local_private_key(&key.secret)
        .map_err(noise)?
        .prologue(PROLOGUE)
        .map_err(noise)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .map_err(noise)
}

/// A connected socket, unbuffered writes, buffered reads.
fn halves(tcp: TcpStream) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
    let _ = tcp.set_nodelay(true);
    let (r, w) = tcp.into_split();
    (BufReader::new(r), w)
}

/// Dial a committee member: preamble, then the initiator side of XX. The responder
/// must prove `expect` (its X25519 static key).
pub async fn connect(
    tcp: TcpStream,
    key: &StaticKey,
    expect: &[u8; 32],
    max_msg: usize,
    timeout: Duration,
) -> Result<Link, LinkError> {
    let run = async {
        let (mut r, mut w) = halves(tcp);
        let mut hs = handshake(key, true)?;
        w.write_all(MAGIC).await?;
        let mut buf = vec![0u8; MAX_NOISE];
        let mut frame = Vec::new();
        // -> e
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_frame(&mut w, &buf[..n]).await?;
        // <- e, ee, s, es
        read_frame(&mut r, &mut frame).await?;
        hs.read_message(&frame, &mut buf).map_err(noise)?;
        if hs.get_remote_static() != Some(expect.as_slice()) {
            return Err(LinkError::Refused(
                "the responder is not the member we dialled".into(),
            ));
        }
        // -> s, se
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_frame(&mut w, &buf[..n]).await?;
        split(r, w, hs, max_msg)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| LinkError::Timeout)?
}

/// The responder side: read the preamble and run XX. The link's `remote` is the
/// initiator's proven static key; the caller decides whether it may stay.
pub async fn accept(
    tcp: TcpStream,
    key: &StaticKey,
    max_msg: usize,
    timeout: Duration,
) -> Result<Link, LinkError> {
    let run = async {
        let (mut r, mut w) = halves(tcp);
        let mut pre = [0u8; 18];
        r.read_exact(&mut pre).await?;
        if &pre != MAGIC {
            return Err(LinkError::Refused(
                "not a datdot committee connection".into(),
            ));
        }
        let mut hs = handshake(key, false)?;
        let mut buf = vec![0u8; MAX_NOISE];
        let mut frame = Vec::new();
        read_frame(&mut r, &mut frame).await?;
        hs.read_message(&frame, &mut buf).map_err(noise)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise)?;
        write_frame(&mut w, &buf[..n]).await?;
        read_frame(&mut r, &mut frame).await?;
        hs.read_message(&frame, &mut buf).map_err(noise)?;
        split(r, w, hs, max_msg)
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| LinkError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn key(b: u8) -> StaticKey {
        StaticKey::from_seed(&[b; 32])
    }

    #[test]
    fn x25519_form_matches_the_secret() {
        let k = key(7);
        assert_eq!(x25519_of(&k.registered), Some(k.public));
        // The X25519 public of the derived secret is the derived public.
        let p = curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(k.secret);
        assert_eq!(p.to_bytes(), k.public);
    }

    async fn pair(expect: [u8; 32]) -> (Result<Link, LinkError>, Result<Link, LinkError>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            accept(tcp, &key(2), 1 << 20, Duration::from_secs(5)).await
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let c = connect(tcp, &key(1), &expect, 1 << 20, Duration::from_secs(5)).await;
        (c, server.await.unwrap())
    }

    proptest::proptest! {
        /// Any byte stream, cut anywhere: whole messages come out in order, a length over
        /// the limit is an error, nothing panics or buffers past the limit.
        #[test]
        fn reassembly_of_arbitrary_streams(
            msgs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..8),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cut in 1usize..97,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                stream.extend_from_slice(&(m.len() as u32).to_le_bytes());
                stream.extend_from_slice(m);
            }
            stream.extend_from_slice(&garbage);
            let mut pending = Vec::new();
            let mut out = Vec::new();
            let mut failed = false;
            'feed: for chunk in stream.chunks(cut) {
                pending.extend_from_slice(chunk);
                loop {
                    match take_message(&mut pending, 256) {
                        Ok(Some(m)) => out.push(m),
                        Ok(None) => break,
                        Err(_) => { failed = true; break 'feed; }
                    }
                }
                proptest::prop_assert!(pending.len() < 4 + 256 + cut);
            }
            // Messages come out in order and intact, up to the first oversized one.
            let fit = msgs.iter().take_while(|m| m.len() <= 256).count();
            proptest::prop_assert!(out.len() >= fit);
            for (a, b) in out.iter().zip(&msgs) {
                proptest::prop_assert_eq!(a, b);
            }
            if fit < msgs.len() {
                proptest::prop_assert!(failed);
            }
        }
    }

    #[tokio::test]
    async fn mutual_auth_and_messages_of_any_size() {
        let (c, s) = pair(key(2).public).await;
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        assert_eq!(c.remote, key(2).public);
        assert_eq!(s.remote, key(1).public);
        for len in [0usize, 1, 65_519, 65_520, 200_000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            c.tx.send(&msg).await.unwrap();
            assert_eq!(s.rx.recv().await.unwrap().unwrap(), msg);
            s.tx.send(&msg).await.unwrap();
            assert_eq!(c.rx.recv().await.unwrap().unwrap(), msg);
        }
        drop(c);
        assert!(s.rx.recv().await.unwrap().is_none(), "clean close");
    }

    #[tokio::test]
    async fn the_wrong_responder_is_refused() {
        let (c, _) = pair(key(3).public).await;
        assert!(matches!(c, Err(LinkError::Refused(_))), "{c:?}");
    }

    #[tokio::test]
    async fn oversized_message_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut link = accept(tcp, &key(2), 100, Duration::from_secs(5))
                .await
                .unwrap();
            link.rx.recv().await
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = connect(tcp, &key(1), &key(2).public, 100, Duration::from_secs(5))
            .await
            .unwrap();
        c.tx.send(&[0u8; 101]).await.unwrap();
        assert!(matches!(
            server.await.unwrap(),
            Err(LinkError::Oversized(101))
        ));
    }

    #[tokio::test]
    async fn garbage_preamble_and_silence_end_the_handshake() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = l.accept().await.unwrap();
                out.push(
                    accept(tcp, &key(2), 100, Duration::from_millis(300))
                        .await
                        .map(|_| ()),
                );
            }
            out
        });
        let mut g = TcpStream::connect(addr).await.unwrap();
        g.write_all(&[0xAB; 64]).await.unwrap();
        let _silent = TcpStream::connect(addr).await.unwrap();
        let r = server.await.unwrap();
        assert!(matches!(r[0], Err(LinkError::Refused(_))), "{:?}", r[0]);
        assert!(matches!(r[1], Err(LinkError::Timeout)), "{:?}", r[1]);
    }
}
