//! Errors, one enum per operation. Each says whether the *peer misbehaved* (evidence,
//! drop the peer), the *peer lacks data* (not a fault), the link failed, or we misused
//! the API / our own storage failed.

use std::io;

use hypercore::HypercoreError;

/// Why the framed byte stream ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({have} bytes of it received)")]
    Truncated {
        /// Bytes of the partial frame (prefix included).
        have: usize,
    },
    /// A length prefix over our limit (nothing was allocated for it).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// Our limit.
        max: usize,
    },
    /// Socket error.
    #[error("socket error: {0}")]
    Io(io::ErrorKind),
    /// A decrypted frame the decode guard refused (it could abort or panic the decoder,
    /// or does not decode); see [`crate::guard`].
    #[error("frame refused by the decode guard: {0}")]
    Refused(crate::guard::GuardError),
}

impl FrameError {
    /// Whether this is the peer breaking the protocol (not a plain disconnect).
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            FrameError::Oversized { .. } | FrameError::Truncated { .. } | FrameError::Refused(_)
        )
    }
}

/// Why a connection could not be set up (dial, accept, handshake).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        /// Where we dialed.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The Noise handshake did not finish in time.
    #[error("handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The handshake failed (bad handshake message, decryption failure).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The stream failed during the handshake.
    #[error("handshake aborted: {0}")]
    Frame(#[from] FrameError),
    /// The responder's static key is not the one we dialed for.
    #[error("remote static key {got} is not the expected {expected}")]
    WrongRemoteKey {
        /// Hex of the key we pinned.
        expected: String,
        /// Hex of the key the peer proved.
        got: String,
    },
    /// The peer is not on the allow list of this listener.
    #[error("remote static key {0} is not allowed here")]
    NotAllowed(String),
    /// Local misuse: bad key material or configuration.
    #[error("local error: {0}")]
    Local(String),
}

/// Why a replication session (serving or fetching) ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer broke the protocol; evidence, drop the peer.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] Misbehaviour),
    /// The peer does not have what we asked for (not a fault by itself).
    #[error("peer lacks data: {0}")]
    LacksData(String),
    /// The link failed (closed, reset) or went idle.
    #[error("link failed: {0}")]
    Link(String),
    /// Our own storage failed.
    #[error("local storage error: {0}")]
    Storage(#[source] HypercoreError),
    /// Local misuse of the API.
    #[error("local error: {0}")]
    Local(String),
}

/// What exactly a peer did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// Framing violation (oversized, truncated or refused frame).
    #[error("{0}")]
    Frame(FrameError),
    /// The protocol layer could not decode or decrypt what the peer sent.
    #[error("undecodable or undecryptable message: {0}")]
    Malformed(String),
    /// A block whose proof does not verify against the feed's signed tree.
    #[error("block {index} failed verification: {reason}")]
    BadBlock {
        /// Block index.
        index: u64,
        /// What did not verify.
        reason: String,
    },
    /// An upgrade (signed tree) proof that does not verify.
    #[error("upgrade to length {length} failed verification: {reason}")]
    BadUpgrade {
        /// Length offered.
        length: u64,
        /// What did not verify.
        reason: String,
    },
    /// A data message we never asked for (or for the wrong block).
    #[error("unsolicited data for request {0}")]
    Unsolicited(u64),
    /// More queued messages than allowed per peer.
    #[error("more than {0} messages queued from one peer (request flood)")]
    Flood(usize),
    /// A datdot extension message that does not decode.
    #[error("bad datdot extension message: {0}")]
    BadExtension(String),
    /// A receipt that does not verify for this hoster, feed and connection.
    #[error("bad receipt: {0}")]
    BadReceipt(String),
    /// More channels opened than allowed.
    #[error("more than {0} channels opened")]
    TooManyChannels(usize),
}

impl SessionError {
    pub(crate) fn from_frame(e: FrameError) -> Self {
        if e.is_misbehaviour() {
            SessionError::PeerMisbehaved(Misbehaviour::Frame(e))
        } else {
            SessionError::Link(e.to_string())
        }
    }
}
