//! The commit-reveal coin flip (SPEC §3.3, "Spontaneous Random Number Consensus").
//!
//! A committee of `n` attestors agrees on a random `R` that no member (nor anyone
//! outside) can predict or choose alone, as long as one member is honest:
//!
//! 1. **Commit.** Each member draws `x`, sends a signed commit `y = H(x)` to all.
//! 2. **Echo.** Once it holds a commit from every active member, it sends all of them
//!    (with their authors' signatures) to every peer. Two different signed commits
//!    from one member are an *equivocation* [`FraudProof`]. A commit first seen in an
//!    echo is adopted, so a lost direct commit does not stall the round.
//! 3. **Reveal.** Once every peer's echo matches its own commit set, it sends its
//!    signed `x` to each peer. A reveal with `H(x) != y` is an *invalid-reveal* proof.
//!    A member that lacks reveals asks peers to relay theirs (on a confirmation ping
//!    from a peer that has `R`, and once more when its reveal timer expires).
//! 4. **Result.** `R = H(x_1 || … || x_n)` over active members in committee order.
//! 5. **Confirm** (optional). Each member pings every peer with a signed `H(R || 1)`
//!    bound to the commit set; peers pong `H(R || 2)`. A wrong value is a
//!    *divergent-result* proof. It does not restart the round: `R` is fixed by the
//!    transcript, and a restart would hand the liar a veto over `R`.
//!
//! Exits per round: success; *offline* (a phase timer expired: the members whose
//! commit, echo or reveal is missing are named — a missing reveal is the withholding
//! accusation of SPEC §3.3); *malicious* (a verified fraud proof: the offender is
//! excluded; members that missed the evidence are sent the proof when their member set
//! or round disagrees with ours). Failed rounds are retried with a fresh round number
//! and fresh `x`: after an exponential backoff for offline exits (at most `max_rounds`
//! of those), at once for each exclusion; the flip fails for good if fewer than
//! `min_members` remain. The members an offline exit names are *benched*: left out of
//! every later round (as if excluded, but without a proof), so one silent or withholding
//! member costs one round, not the flip; the accusation with its signed commit
//! ([`RoundExit::Offline::withheld`]) is what the chain judges it by.
//!
//! ## Driving it (call order)
//! Create with [`CoinFlip::new`] (it queues the first commit). Then, in any order:
//! feed every message from a committee member through [`CoinFlip::handle_message`]
//! with the transport-authenticated sender key; call [`CoinFlip::handle_timeout`] when
//! the instant from [`CoinFlip::poll_timeout`] has passed. After each call drain
//! [`CoinFlip::poll_transmit`] (send to the named peer) and [`CoinFlip::poll_event`].
//! [`CoinFlip::is_finished`] turns true when nothing more will happen.

#[cfg(feature = "byzantine")]
pub mod byzantine;
mod machine;
mod msg;
mod transcript;

pub use machine::{
    CoinFlip, Config, ConfigError, Event, MIN_PHASE, Outcome, Phase, RoundExit, Stats, Transmit,
    round_secret,
};
pub use msg::{
    ConfirmKind, EchoEntry, MAX_COMMITTEE, Msg, SessionId, SignedCommit, SignedConfirm,
    SignedReveal,
};
pub use transcript::{Transcript, TranscriptError, commit_value, commits_digest, result_of, x_of};

#[allow(unused_imports)]
use crate::fraud::FraudProof; // for the doc links above

/// Domain prefix of the coin-flip session ids of chain challenges.
pub const SESSION_CONTEXT: &[u8] = b"datdot/v1/session";

/// The coin-flip session id of challenge `id` on `chain`:
/// `BLAKE2b-256("datdot/v1/session" || chain id || id as u64 LE)` (the chain checks
/// fraud proofs and published reveals against it). Every commit, reveal and
/// confirmation signs its session, so none made for one chain (or for a dev chain before
/// a reset, where challenge ids repeat) is evidence on another.
pub fn challenge_session(chain: &crate::identity::ChainId, id: u64) -> SessionId {
    crate::hash::blake2b256(&[SESSION_CONTEXT, chain, &id.to_le_bytes()])
}

#[cfg(test)]
mod tests;
