//! Connections: TCP + the Hypercore secret-stream Noise handshake (XX,
//! `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, what JS `@hyperswarm/secret-stream` speaks),
//! framed with `uint24le`, carrying `hypercore-protocol`'s protomux messages.
//!
//! Dialing pins the responder's static key (a different key is refused before any
//! replication message is exchanged). The dialer's own key is always a fresh ephemeral
//! one: `hypercore_handshake` 0.6 generates the XX initiator key itself (see DESIGN §12).

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use hypercore_handshake::{Cipher, HandshakePattern};
use hypercore_protocol::{Event, Protocol};
use tokio::net::TcpStream;

use crate::error::ConnectError;
use crate::frame::{FrameShared, Framed};
use crate::guard::GuardedCipher;
use crate::identity::{NoiseIdentity, hex};
use crate::limits::Limits;

/// Whom a dialer expects at the other end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this Noise static key (registered on chain); anyone else is refused.
    Key([u8; 32]),
    /// Anyone (the data is verified against the feed key anyway).
    Any,
}

/// An established, authenticated connection, ready for replication.
#[derive(Debug)]
pub struct Connection {
    pub(crate) protocol: Protocol,
    pub(crate) shared: Arc<FrameShared>,
    pub(crate) limits: Limits,
    /// Events that arrived together with the end of the handshake (e.g. the peer's
    /// channel open); the session handles them first.
    pub(crate) early: Vec<Event>,
    remote_key: [u8; 32],
    local_key: [u8; 32],
    peer_addr: SocketAddr,
}

impl Connection {
    /// The peer's Noise static key, proven in the handshake.
    pub fn remote_key(&self) -> [u8; 32] {
        self.remote_key
    }
    /// Our Noise static key on this connection.
    pub fn local_key(&self) -> [u8; 32] {
        self.local_key
    }
    /// The peer's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }
    /// The replication protocol, for a replication loop of the caller's own (and the
    /// hostile-peer tests). Events that came with the handshake are lost.
    pub fn into_protocol(self) -> Protocol {
        self.protocol
    }
    /// [`Connection::into_protocol`], with a handle that pauses and resumes reading
    /// from the socket (a replication loop of the caller's own that applies
    /// backpressure; the hostile-peer tests use it to send without reading).
    pub fn into_parts(self) -> (Protocol, ReadGate) {
        (self.protocol, ReadGate(self.shared))
    }
    /// Bytes read from / written to the socket so far.
    pub fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.read.load(Relaxed),
            self.shared.written.load(Relaxed),
        )
    }
}

/// Pauses and resumes reading on one connection ([`Connection::into_parts`]).
#[derive(Clone, Debug)]
pub struct ReadGate(Arc<FrameShared>);

impl ReadGate {
    /// Read nothing more from the socket until [`ReadGate::resume`]; writing goes on.
    pub fn pause(&self) {
        self.0.pause_reads();
    }
    /// Read again.
    pub fn resume(&self) {
        self.0.resume_reads();
    }
    /// Bytes written to the socket so far (a sender that paces itself).
    pub fn written(&self) -> u64 {
        self.0.written.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Our framing over `tcp`, taking frames of at most `max_frame` after the handshake,
/// reading `read_chunk` bytes at a time.
fn framed(
    tcp: TcpStream,
    limits: &Limits,
    max_frame: usize,
    read_chunk: usize,
) -> (Framed, Arc<FrameShared>) {
    let shared = Arc::new(FrameShared::default());
    let f = Framed::new(
        tcp,
        shared.clone(),
        max_frame,
        limits.frames_per_poll,
        limits.max_unsent,
        read_chunk,
    );
    (f, shared)
}

/// Drive the protocol until the handshake event, bounded by the handshake timeout.
async fn finish_handshake(
    mut protocol: Protocol,
    shared: Arc<FrameShared>,
    limits: &Limits,
    peer_addr: SocketAddr,
) -> Result<Connection, ConnectError> {
    let mut early = Vec::new();
    let run = async {
        loop {
            tokio::select! {
                ev = protocol.next() => match ev {
                    Some(Ok(Event::Handshake(remote))) => {
                        shared.established.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Ok(remote);
                    }
                    Some(Ok(ev)) => {
                        if early.len() >= limits.max_channels {
                            return Err(ConnectError::Handshake("too many events before the handshake finished".into()));
                        }
                        early.push(ev);
                    }
                    Some(Err(e)) => return Err(ConnectError::Handshake(e.to_string())),
                    None => return Err(ConnectError::Handshake("stream ended".into())),
                },
                e = shared.failed() => return Err(ConnectError::Frame(e)),
            }
        }
    };
    let remote = tokio::time::timeout(limits.handshake_timeout, run)
        .await
        .map_err(|_| ConnectError::HandshakeTimeout(limits.handshake_timeout))??;
    let local_key = protocol.public_key();
    Ok(Connection {
        protocol,
        shared,
        limits: limits.clone(),
        early,
        remote_key: remote,
        local_key,
        peer_addr,
    })
}

/// Dial `addr` and run the handshake as initiator with a fresh identity.
pub async fn dial(
    addr: SocketAddr,
    expect: Expect,
    limits: &Limits,
) -> Result<Connection, ConnectError> {
    dial_from(None, addr, expect, limits).await
}

/// [`dial`] from local address `from` (any port), if given: a multi-homed node's
/// chosen source address, or a test's 127.0.0.0/8 address.
pub async fn dial_from(
    from: Option<std::net::IpAddr>,
    addr: SocketAddr,
    expect: Expect,
    limits: &Limits,
) -> Result<Connection, ConnectError> {
    let tcp_err = |source| ConnectError::Tcp {
        addr: addr.to_string(),
        source,
    };
    let connect = async {
        match from {
            None => TcpStream::connect(addr).await,
            Some(ip) => {
                let socket = match ip {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await
            }
        }
    };
    let tcp = tokio::time::timeout(limits.handshake_timeout, connect)
        .await
        .map_err(|_| ConnectError::HandshakeTimeout(limits.handshake_timeout))?
        .map_err(tcp_err)?;
    let _ = tcp.set_nodelay(true);
    let (io, shared) = framed(tcp, limits, limits.max_frame, crate::frame::READ_CHUNK);
    let cipher =
        Cipher::new_dht_init_with_pattern(Some(Box::new(io)), HandshakePattern::XX, None, &[])
            .map_err(|e| ConnectError::Local(e.to_string()))?;
    let cipher = GuardedCipher::new(cipher, shared.clone());
    let conn = finish_handshake(Protocol::new(Box::new(cipher)), shared, limits, addr).await?;
    if let Expect::Key(k) = expect
        && conn.remote_key != k
    {
        return Err(ConnectError::WrongRemoteKey {
            expected: hex(&k),
            got: hex(&conn.remote_key),
        });
    }
    Ok(conn)
}

/// Run the responder side of the handshake on an accepted socket.
pub async fn accept(
    tcp: TcpStream,
    identity: &NoiseIdentity,
    limits: &Limits,
) -> Result<Connection, ConnectError> {
    let peer_addr = tcp.peer_addr().map_err(|source| ConnectError::Tcp {
        addr: "accepted socket".into(),
        source,
    })?;
    let _ = tcp.set_nodelay(true);
    let (io, shared) = framed(
        tcp,
        limits,
        limits.max_request_frame,
        crate::frame::REQUEST_READ_CHUNK,
    );
    let cipher = Cipher::resp_from_private_with_pattern(
        Some(Box::new(io)),
        &identity.snow_keypair(),
        HandshakePattern::XX,
        &[],
    )
    .map_err(|e| ConnectError::Local(e.to_string()))?;
    let cipher = GuardedCipher::limited(cipher, shared.clone(), limits.max_request_message)
        .with_poll_budget(crate::guard::REQUEST_POLL_BUDGET);
    finish_handshake(Protocol::new(Box::new(cipher)), shared, limits, peer_addr).await
}
