//! What a call to the chain can end in: [`ChainError`].

use std::time::Duration;

use crate::datdot;

/// The pallet's own errors, as the metadata names them (`DatdotError::TooEarly`, …).
pub use datdot::runtime_types::pallet_datdot::pallet::Error as DatdotError;

/// Why a call to the chain did not succeed. Match on the kind, never on the message.
///
/// A transaction:
/// - [`ChainError::Refused`]: the chain applied the transaction and the pallet said
///   no; final (a retry gets the same answer). The pallet's error is a value
///   ([`Rejected::datdot`]).
/// - [`ChainError::Timeout`]: submitted, not finalized in time; the node may have
///   dropped it. A retry is safe: a call already applied fails with the pallet's own
///   error.
/// - [`ChainError::Transport`]: the connection or the node failed before the
///   transaction was taken (the client already retried [`crate::SUBMIT_ATTEMPTS`]
///   times).
/// - [`ChainError::Reset`]: the node serves another chain now; nothing was signed.
/// - [`ChainError::Events`]: applied, but its events did not decode.
///
/// A read (storage, constants, the head):
/// - [`ChainError::Read`]: the connection, the RPC or the node failed; a retry may
///   succeed.
/// - [`ChainError::Decode`]: the node answered with bytes this client's metadata does
///   not describe (another runtime); a retry gets the same bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The pallet (or another one) refused the call.
    #[error(transparent)]
    Refused(#[from] Rejected),
    /// Not finalized within `after`.
    #[error(
        "{call} was not finalized within {after:?} (the node may have dropped it; a retry is safe: a call already applied fails with the pallet's own error)"
    )]
    Timeout {
        /// The call (`"submit_report"`, …).
        call: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The connection, the RPC or the node failed.
    #[error("{call} failed: {cause:#}")]
    Transport {
        /// The call.
        call: &'static str,
        /// What failed.
        cause: anyhow::Error,
    },
    /// The node serves another chain than the one this client connected to.
    #[error(transparent)]
    Reset(#[from] ChainReset),
    /// The call was applied, but what it created could not be read from its events.
    #[error("{call} succeeded, but its events could not be read: {cause:#}")]
    Events {
        /// The call.
        call: &'static str,
        /// What failed.
        cause: anyhow::Error,
    },
    /// Reading `what` failed on the way: connection, RPC or node.
    #[error("reading {what}: {cause:#}")]
    Read {
        /// What was read (`"Participants"`, `"the finalized head"`, …).
        what: &'static str,
        /// What failed.
        cause: anyhow::Error,
    },
    /// `what` was read but does not decode as this client's metadata says.
    #[error("decoding {what}: {cause:#}")]
    Decode {
        /// What was read.
        what: &'static str,
        /// What failed.
        cause: anyhow::Error,
    },
}

impl ChainError {
    /// The refusal, if the chain refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            ChainError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The pallet's error, if the Datdot pallet refused the call.
    pub fn datdot(&self) -> Option<DatdotError> {
        self.rejected().and_then(Rejected::datdot)
    }

    /// Whether trying the same call again may succeed (a timeout, a transport or read
    /// failure; a refusal, a reset chain, undecodable bytes or an applied call whose
    /// events did not decode never do).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ChainError::Timeout { .. } | ChainError::Transport { .. } | ChainError::Read { .. }
        )
    }

    /// A read of `what` that failed on the way.
    pub(crate) fn read(what: &'static str) -> impl FnOnce(anyhow::Error) -> ChainError {
        move |cause| ChainError::Read { what, cause }
    }

    /// A read of `what` that does not decode.
    pub(crate) fn decode<E: Into<anyhow::Error>>(
        what: &'static str,
    ) -> impl FnOnce(E) -> ChainError {
        move |cause| ChainError::Decode {
            what,
            cause: cause.into(),
        }
    }
}

/// Which pallet refused a call, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The Datdot pallet's error.
    Datdot(DatdotError),
    /// Another pallet's (e.g. `Balances`), by index; [`Rejected`] has the names.
    Other {
        /// Its index in the runtime.
        pallet: u8,
        /// The error's index in the pallet.
        error: u8,
    },
}

/// The chain refused a call: which pallet error, and what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call} refused by the chain: {pallet}::{name}: {doc}")]
pub struct Rejected {
    /// The call (`"submit_report"`, …).
    pub call: &'static str,
    /// The error as a value.
    pub error: Refusal,
    /// The pallet's name (`"Datdot"`, `"Balances"`, …).
    pub pallet: String,
    /// The error variant's name (`"TooEarly"`, …), for people.
    pub name: String,
    /// Its documentation in the metadata.
    pub doc: String,
}

impl Rejected {
    /// The Datdot pallet's error, if it was that pallet's.
    pub fn datdot(&self) -> Option<DatdotError> {
        match self.error {
            Refusal::Datdot(e) => Some(e),
            Refusal::Other { .. } => None,
        }
    }
}

/// The node at our URL serves another chain than the one this client connected to (a
/// dev chain started again): connect a new client, and start over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the chain was reset: chain id 0x{} is now 0x{}; reconnect", hex::encode(.was), hex::encode(.now))]
pub struct ChainReset {
    /// The chain id we connected to.
    pub was: [u8; 32],
    /// The one the node serves now.
    pub now: [u8; 32],
}

/// Whether a submission error is worth retrying (the connection, not the transaction):
/// subxt reports its transport failures as text only.
pub(crate) fn transient(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "restart",
        "reconnect",
        "connection",
        "disconnect",
        "timeout",
        "timed out",
    ]
    .iter()
    .any(|w| m.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_transient_refusals_are_not() {
        assert!(transient(
            "RPC error: the connection was closed; reconnect initiated"
        ));
        assert!(transient("Request timeout"));
        assert!(!transient("Transaction is outdated"));
        assert!(!transient(
            "Invalid Transaction: Inability to pay some fees"
        ));
    }

    #[test]
    fn a_refusal_is_a_value_and_final() {
        let e = ChainError::from(Rejected {
            call: "submit_report",
            error: Refusal::Datdot(DatdotError::TooEarly),
            pallet: "Datdot".into(),
            name: "TooEarly".into(),
            doc: "Reports are accepted from the challenge's end on.".into(),
        });
        assert!(matches!(e.datdot(), Some(DatdotError::TooEarly)));
        assert!(!e.retryable());
        assert_eq!(
            e.to_string(),
            "submit_report refused by the chain: Datdot::TooEarly: Reports are accepted from the challenge's end on."
        );
        let t = ChainError::Timeout {
            call: "submit_report",
            after: Duration::from_secs(30),
        };
        assert!(t.retryable() && t.datdot().is_none());
        let other = Rejected {
            error: Refusal::Other {
                pallet: 2,
                error: 3,
            },
            ..e.rejected().unwrap().clone()
        };
        assert_eq!(other.datdot(), None);
    }

    #[test]
    fn a_failed_read_may_succeed_again_an_undecodable_one_never() {
        let read = ChainError::read("Participants")(anyhow::anyhow!("connection closed"));
        assert!(read.retryable());
        assert_eq!(read.to_string(), "reading Participants: connection closed");
        let decode =
            ChainError::decode::<anyhow::Error>("Participants")(anyhow::anyhow!("not enough data"));
        assert!(!decode.retryable() && decode.datdot().is_none());
        assert_eq!(decode.to_string(), "decoding Participants: not enough data");
    }
}
