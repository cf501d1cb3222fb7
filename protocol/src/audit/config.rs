//! The audit's time limits, validated on construction.

use std::time::Duration;

use super::MAX_DURATION;
#[cfg(doc)]
use crate::metrics::Outcome;

/// Why an [`AuditConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration below one microsecond.
    #[error("{0} must be at least 1 µs")]
    Zero(&'static str),
    /// A timeout longer than the hard maximum, which would never fire.
    #[error("{0} exceeds the hard maximum duration")]
    ExceedsHardMax(&'static str),
    /// A hard maximum beyond [`MAX_DURATION`].
    #[error("hard maximum duration exceeds {MAX_DURATION:?}")]
    HardMaxTooLong,
}

/// The audit's time limits. Built by [`AuditConfig::new`], which validates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    progress_timeout: Duration,
    hard_max: Duration,
    request_timeout: Duration,
}

impl Default for AuditConfig {
    /// 10 s progress timeout, 60 s hard maximum, 20 s per request.
    ///
    /// The request timeout exceeds the progress timeout on purpose: then a hoster that
    /// stops sending altogether always hits the progress deadline first and the audit
    /// ends as [`Outcome::ProgressTimeout`], while a hoster that keeps serving but
    /// silently skips some requests shows up as per-request timeouts.
    fn default() -> Self {
        AuditConfig {
            progress_timeout: Duration::from_secs(10),
            hard_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(20),
        }
    }
}

impl AuditConfig {
    /// Limits for one audit:
    /// - `progress_timeout`: how long the hoster may send nothing while requests are in
    ///   flight (or while the connection is being set up) before the audit stops;
    /// - `hard_max`: how long the whole audit may last, from `Audit::new`;
    /// - `request_timeout`: how long one request may take, from `request_sent`.
    ///
    /// Each must be at least 1 µs, the timeouts at most `hard_max`, and `hard_max` at
    /// most [`MAX_DURATION`].
    pub fn new(
        progress_timeout: Duration,
        hard_max: Duration,
        request_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let one = Duration::from_micros(1);
        for (d, what) in [
            (progress_timeout, "progress timeout"),
            (hard_max, "hard maximum"),
            (request_timeout, "request timeout"),
        ] {
            if d < one {
                return Err(ConfigError::Zero(what));
            }
        }
        if hard_max > MAX_DURATION {
            return Err(ConfigError::HardMaxTooLong);
        }
        if progress_timeout > hard_max {
            return Err(ConfigError::ExceedsHardMax("progress timeout"));
        }
        if request_timeout > hard_max {
            return Err(ConfigError::ExceedsHardMax("request timeout"));
        }
        Ok(AuditConfig {
            progress_timeout,
            hard_max,
            request_timeout,
        })
    }

    /// These limits within `cap` (the time a challenge window leaves, at least 1 ms):
    /// the hard maximum at most `cap`, the timeouts at most the hard maximum.
    pub fn capped(&self, cap: Duration) -> Self {
        let hard_max = self.hard_max.min(cap.max(Duration::from_millis(1)));
        AuditConfig {
            progress_timeout: self.progress_timeout.min(hard_max),
            hard_max,
            request_timeout: self.request_timeout.min(hard_max),
        }
    }

    /// The progress timeout.
    pub fn progress_timeout(&self) -> Duration {
        self.progress_timeout
    }
    /// The hard maximum duration.
    pub fn hard_max(&self) -> Duration {
        self.hard_max
    }
    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        let s = Duration::from_secs;
        assert_eq!(
            AuditConfig::new(s(10), s(60), s(20)),
            Ok(AuditConfig::default())
        );
        assert_eq!(
            AuditConfig::new(Duration::ZERO, s(60), s(10)),
            Err(ConfigError::Zero("progress timeout"))
        );
        assert_eq!(
            AuditConfig::new(s(1), Duration::from_nanos(999), s(1)),
            Err(ConfigError::Zero("hard maximum"))
        );
        assert_eq!(
            AuditConfig::new(s(61), s(60), s(10)),
            Err(ConfigError::ExceedsHardMax("progress timeout"))
        );
        assert_eq!(
            AuditConfig::new(s(10), s(60), s(61)),
            Err(ConfigError::ExceedsHardMax("request timeout"))
        );
        assert_eq!(
            AuditConfig::new(s(10), s(3601), s(10)),
            Err(ConfigError::HardMaxTooLong)
        );
        assert!(AuditConfig::new(s(3600), s(3600), s(3600)).is_ok());
    }
}
