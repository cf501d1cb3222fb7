//! Every bound of the transport in one validated struct.

use std::time::Duration;

use crate::frame::MAX_UINT24;

/// Limits of one node's transport. `Limits::default()` documents the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Established sessions a listener serves at once (default 256); past it a new
    /// session evicts the least recently useful idle one or is refused
    /// ([`crate::admit`]).
    pub max_connections: usize,
    /// Established sessions from one address (default 64).
    pub max_connections_per_ip: usize,
    /// Handshakes in progress at once (default 64); past it the oldest is cancelled.
    pub max_handshakes: usize,
    /// Handshakes in progress from one address (default 16).
    pub max_handshakes_per_ip: usize,
    /// A session without useful work for this long may be evicted (default 0.5 s; a
    /// reader opens its channel within a round trip of the handshake).
    pub evict_grace: Duration,
    /// Largest frame a dialer accepts (default 4 MiB; a 64 KiB block with its proof is
    /// ~66 KiB).
    pub max_frame: usize,
    /// Largest frame a listener accepts from the peers that dialled it (default 64 KiB):
    /// readers send requests, not blocks.
    pub max_request_frame: usize,
    /// Largest single message a listener accepts (default 8 KiB; a Hypercore bitfield
    /// page is 4 KiB): the messages waiting in a session's queues are then at most
    /// `(max_queued + frames_per_poll) × max_request_message` bytes.
    pub max_request_message: usize,
    /// Frames read per poll of a connection before it yields (default 64).
    pub frames_per_poll: usize,
    /// Bytes waiting for the socket before sending applies backpressure (default 1 MiB).
    pub max_unsent: usize,
    /// A served session may always have this many answer bytes waiting for the socket
    /// (default 64 KiB); past it, only while all sessions of the listener together
    /// have fewer than `max_unsent_total` waiting.
    pub unsent_floor: usize,
    /// Answer bytes waiting for the socket across all served sessions of a listener
    /// beyond which a session past its `unsent_floor` waits (default 16 MiB).
    pub max_unsent_total: usize,
    /// Bytes of decoded messages (their in-memory size) a served session holds before
    /// it stops reading from the peer (default 64 KiB): TCP backpressure, not a flood.
    pub max_queued_bytes: usize,
    /// The Noise handshake must finish within this (default 10 s).
    pub handshake_timeout: Duration,
    /// A served session that did no useful work (a channel opened for a feed we serve,
    /// a request answered with data) for this long is closed (default 60 s); other
    /// messages do not reset it.
    pub idle_timeout: Duration,
    /// Messages queued from one peer and not yet handled; more is a flood (default 512).
    pub max_queued: usize,
    /// Channels (feeds) per connection (default 16).
    pub max_channels: usize,
    /// Block requests a fetcher keeps in flight (default 64; must be < `max_queued`).
    pub request_window: usize,
    /// A fetch with no verified block for this long fails (default 20 s).
    pub progress_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_connections_per_ip: 64,
            max_handshakes: 64,
            max_handshakes_per_ip: 16,
            evict_grace: Duration::from_millis(500),
            max_frame: 4 << 20,
            max_request_frame: 64 << 10,
            max_request_message: 8 << 10,
            frames_per_poll: 64,
            max_unsent: 1 << 20,
            unsent_floor: 64 << 10,
            max_unsent_total: 16 << 20,
            max_queued_bytes: 64 << 10,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_queued: 512,
            max_channels: 16,
            request_window: 64,
            progress_timeout: Duration::from_secs(20),
        }
    }
}

impl Limits {
    /// The listener's admission bounds.
    pub fn admit(&self) -> crate::admit::AdmitLimits {
        crate::admit::AdmitLimits {
            handshakes: self.max_handshakes,
            handshakes_per_ip: self.max_handshakes_per_ip,
            sessions: self.max_connections,
            sessions_per_ip: self.max_connections_per_ip,
            grace_ms: u64::try_from(self.evict_grace.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Check the limits are usable; returns them unchanged.
    pub fn validate(self) -> Result<Self, String> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_handshakes", self.max_handshakes),
            ("max_handshakes_per_ip", self.max_handshakes_per_ip),
            ("max_frame", self.max_frame),
            ("frames_per_poll", self.frames_per_poll),
            ("max_unsent", self.max_unsent),
            ("unsent_floor", self.unsent_floor),
            ("max_unsent_total", self.max_unsent_total),
            ("max_queued_bytes", self.max_queued_bytes),
            ("max_queued", self.max_queued),
            ("max_channels", self.max_channels),
            ("request_window", self.request_window),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be > 0"));
            }
        }
        if self.max_frame > MAX_UINT24 {
            return Err(format!("max_frame must be <= {MAX_UINT24}"));
        }
        if self.max_frame < 128 * 1024 {
            return Err("max_frame must be >= 128 KiB (a 64 KiB block with its proof)".into());
        }
        if self.max_request_frame < crate::frame::HANDSHAKE_MAX_FRAME
            || self.max_request_frame > self.max_frame
        {
            return Err("max_request_frame must be in [4 KiB, max_frame]".into());
        }
        if self.max_request_message < 1024 || self.max_request_message > self.max_request_frame {
            return Err("max_request_message must be in [1 KiB, max_request_frame]".into());
        }
        if self.unsent_floor > self.max_unsent || self.max_unsent > self.max_unsent_total {
            return Err("need unsent_floor <= max_unsent <= max_unsent_total".into());
        }
        if self.request_window >= self.max_queued {
            return Err("request_window must be < max_queued".into());
        }
        for (name, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("progress_timeout", self.progress_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be > 0"));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_refused() {
        assert!(Limits::default().validate().is_ok());
        let bad = Limits {
            request_window: 600,
            ..Limits::default()
        };
        assert!(bad.validate().is_err());
        let bad = Limits {
            max_frame: MAX_UINT24 + 1,
            ..Limits::default()
        };
        assert!(bad.validate().is_err());
    }
}
