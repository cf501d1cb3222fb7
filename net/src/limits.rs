//! Every bound of the transport in one validated struct.

use std::time::Duration;

use crate::frame::MAX_UINT24;

/// Limits of one node's transport. `Limits::default()` documents the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections a listener serves (default 256); more are closed at once.
    pub max_connections: usize,
    /// Largest frame accepted (default 4 MiB; a 64 KiB block with its proof is ~66 KiB).
    pub max_frame: usize,
    /// Frames read per poll of a connection before it yields (default 64).
    pub frames_per_poll: usize,
    /// Bytes waiting for the socket before sending applies backpressure (default 1 MiB).
    pub max_unsent: usize,
    /// The Noise handshake must finish within this (default 10 s).
    pub handshake_timeout: Duration,
    /// A connection with nothing received for this long is closed (default 60 s).
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
            max_frame: 4 << 20,
            frames_per_poll: 64,
            max_unsent: 1 << 20,
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
    /// Check the limits are usable; returns them unchanged.
    pub fn validate(self) -> Result<Self, String> {
        let positive = [
            ("max_connections", self.max_connections),
            ("max_frame", self.max_frame),
            ("frames_per_poll", self.frames_per_poll),
            ("max_unsent", self.max_unsent),
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
