//! datdot transport, shared by hosters and attestors.
//!
//! # Goals
//! - Connections JavaScript Hypercore peers understand: TCP, `uint24le` frames, the
//!   Hypercore secret-stream Noise handshake (`hypercore_handshake`), protomux channels
//!   with Hypercore replication messages (`hypercore-protocol`).
//! - Dial by (address, expected Noise static key); a different key is refused.
//!   Listen with the node's persistent static key.
//! - Our own bounded replication loops: [`serve()`] (answer requests, sign receipts) and
//!   [`fetch()`] (a window of requests in flight, every block verified).
//! - datdot extension messages ([`ext`]): receipts and end-of-session.
//! - Committee links ([`committee`]): attestors' mutually authenticated Noise channel;
//!   the secret swarm over them ([`swarm`]): one link per peer, sessions multiplexed,
//!   who may hold a link and what a member may send, all bounded.
//! - The auditing reader ([`audit`]): the I/O of an audit; the sans-IO
//!   `datdot_protocol::audit::session::AuditSession` takes its decisions (a sample of
//!   blocks, each verified against the feed's signed root).
//! - Bound everything ([`Limits`]): connections, frame size, queued messages per peer,
//!   unsent bytes, channels, handshake, idle and progress time.
//!
//! # Non-goals
//! - Peer discovery (Hyperswarm DHT): peers come from the chain or the CLI.
//! - Sparse bitfield / want bookkeeping beyond what a full-feed or sampled fetch needs.

pub mod admit;
pub mod audit;
pub mod committee;
pub mod conn;
pub mod error;
pub mod ext;
pub mod fetch;
pub mod frame;
pub mod guard;
pub mod hostile;
pub mod identity;
pub mod limits;
pub mod listen;
pub mod screen;
pub mod serve;
pub mod swarm;

pub use conn::{Connection, Expect, ReadGate, accept, dial, dial_from};
pub use error::{ConnectError, FrameError, Misbehaviour, SessionError};
pub use fetch::{FetchOptions, FetchReport, Progress, fetch};
pub use identity::NoiseIdentity;
pub use limits::Limits;
pub use listen::Listener;
pub use serve::{Counters, FeedSource, ServeConfig, ServeSummary, SingleFeed, seed, serve};
