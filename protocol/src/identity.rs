//! Identities and domain-separated ed25519 signatures.
//!
//! Every signed message kind has its own context string `"datdot/v1/<kind>"`. The bytes
//! actually signed are `len(ctx) as u8 || ctx || payload`, so a signature made for one
//! kind never verifies as another kind, whatever the payloads look like.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

/// A chain's identity ([`chain_id`]). Every signed message names the chain it is for
/// (coin-flip messages through their session id, receipts and reports in a field), so
/// nothing signed for one chain, or for a dev chain before a reset, verifies on another.
pub type ChainId = [u8; 32];

/// The identity of the chain whose genesis hash is `genesis` and whose datdot genesis
/// salt is `salt`: `BLAKE2b-256("datdot/v1/chain" || genesis || salt)`. The dev chain
/// draws a random salt at every start, so a reset is a new chain. The salt is needed
/// besides the genesis hash: chopsticks reports block 0's hash as the genesis state's
/// `System.BlockHash(0)` (`0x45…45`, whatever the rest of the state), the same for every
/// dev chain; on a real node the genesis hash alone would separate them.
pub fn chain_id(genesis: &[u8; 32], salt: &[u8; 32]) -> ChainId {
    crate::hash::blake2b256(&[b"datdot/v1/chain", genesis, salt])
}

/// The kinds of signed message. Each maps to its own signing context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Domain {
    /// Coin-flip commit `y = H(x)`.
    Commit,
    /// Coin-flip reveal of `x`.
    Reveal,
    /// Coin-flip confirmation ping `H(R || 1)`.
    Ping,
    /// Coin-flip confirmation pong `H(R || 2)`.
    Pong,
    /// Hoster's receipt for blocks served on a connection.
    Receipt,
    /// Attestor's report on a challenge.
    Report,
    /// Executor's record of one call of an execution job (`datdot-exec`).
    CallRecord,
    /// Monitor's report on the sampled calls of an execution job (`datdot-exec`).
    MonitorReport,
}

impl Domain {
    /// The signing context of this kind.
    pub const fn context(self) -> &'static [u8] {
        match self {
            Domain::Commit => b"datdot/v1/commit",
            Domain::Reveal => b"datdot/v1/reveal",
            Domain::Ping => b"datdot/v1/ping",
            Domain::Pong => b"datdot/v1/pong",
            Domain::Receipt => b"datdot/v1/receipt",
            Domain::Report => b"datdot/v1/report",
            Domain::CallRecord => b"datdot/v1/call",
            Domain::MonitorReport => b"datdot/v1/monitor",
        }
    }
}

/// Bytes that are actually signed for `payload` of kind `domain`.
fn signing_bytes(domain: Domain, payload: &[u8]) -> alloc::vec::Vec<u8> {
    let ctx = domain.context();
    let mut m = alloc::vec::Vec::with_capacity(1 + ctx.len() + payload.len());
    m.push(ctx.len() as u8);
    m.extend_from_slice(ctx);
    m.extend_from_slice(payload);
    m
}

/// An ed25519 public key (a member's identity). Validated on construction.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

/// The X25519 (Montgomery) form of an ed25519 key used as a Noise static key — the
/// birational map libsodium's `crypto_sign_ed25519_pk_to_curve25519` uses — or `None`
/// if the bytes are not a curve point or the point has small order (a key every
/// Diffie–Hellman result with is predictable). `P` and `−P` (the encoding with the sign
/// bit flipped), and any non-canonical encoding of either, have the same X25519 form:
/// the form Noise authenticates, so uniqueness of Noise keys is checked on it.
pub fn x25519_of(ed25519: &[u8; 32]) -> Option<[u8; 32]> {
    let k = VerifyingKey::from_bytes(ed25519).ok()?;
    (!k.is_weak()).then(|| k.to_montgomery().to_bytes())
}

impl PublicKey {
    /// Parse 32 bytes; fails if they are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| SignatureError::BadKey)
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The ed25519 key, for protocols that sign without a datdot domain (Hypercore trees).
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Verify `sig` over `payload` of kind `domain` (strict verification: rejects
    /// small-order keys and non-canonical signatures, so signatures are not malleable).
    pub fn verify(
        &self,
        domain: Domain,
        payload: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.0
            .verify_strict(&signing_bytes(domain, payload), &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.as_bytes()[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Encode for PublicKey {
    fn encode(&self, w: &mut Writer) {
        w.array(self.as_bytes());
    }
}

impl Decode for PublicKey {
    const MIN_SIZE: usize = 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        PublicKey::from_bytes(&r.array()?).map_err(|_| DecodeError::Invalid("public key"))
    }
}

/// A 64-byte ed25519 signature (not validated until verified).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Encode for Signature {
    fn encode(&self, w: &mut Writer) {
        w.array(&self.0);
    }
}

impl Decode for Signature {
    const MIN_SIZE: usize = 64;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Signature(r.array()?))
    }
}

/// A signing identity. The secret never leaves this type.
pub struct Keypair(SigningKey);

impl Keypair {
    /// From a 32-byte secret seed (the caller draws it from a CSPRNG or a keystore).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `payload` as a message of kind `domain`.
    pub fn sign(&self, domain: Domain, payload: &[u8]) -> Signature {
        Signature(self.0.sign(&signing_bytes(domain, payload)).to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Keypair").field(&self.public()).finish()
    }
}

/// Why a key or signature was rejected. Always evidence against the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The 32 bytes are not a valid ed25519 public key.
    #[error("not a valid ed25519 public key")]
    BadKey,
    /// The signature does not verify for this key, kind and payload.
    #[error("signature does not verify")]
    Invalid,
}

/// Signature verification as a service, so a simulator running many nodes in one
/// process may memoise results (verification is a pure function of its inputs).
pub trait Verifier {
    /// Whether `sig` is `key`'s signature over `payload` of kind `domain`.
    fn verify(&self, key: &PublicKey, domain: Domain, payload: &[u8], sig: &Signature) -> bool;
}

/// Verifies every signature with ed25519 (what real nodes and the chain use).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519Verifier;

impl Verifier for Ed25519Verifier {
    fn verify(&self, key: &PublicKey, domain: Domain, payload: &[u8], sig: &Signature) -> bool {
        key.verify(domain, payload, sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_for_one_kind_never_verifies_as_another() {
        let kp = Keypair::from_seed(&[7; 32]);
        let kinds = [
            Domain::Commit,
            Domain::Reveal,
            Domain::Ping,
            Domain::Pong,
            Domain::Receipt,
            Domain::Report,
            Domain::CallRecord,
            Domain::MonitorReport,
        ];
        for a in kinds {
            let sig = kp.sign(a, b"payload");
            for b in kinds {
                assert_eq!(
                    kp.public().verify(b, b"payload", &sig).is_ok(),
                    a == b,
                    "{a:?} signature checked as {b:?}"
                );
            }
        }
    }

    #[test]
    fn tampered_payload_or_key_fails() {
        let kp = Keypair::from_seed(&[1; 32]);
        let other = Keypair::from_seed(&[2; 32]);
        let sig = kp.sign(Domain::Report, b"abc");
        assert!(kp.public().verify(Domain::Report, b"abc", &sig).is_ok());
        assert_eq!(
            kp.public().verify(Domain::Report, b"abd", &sig),
            Err(SignatureError::Invalid)
        );
        assert!(other.public().verify(Domain::Report, b"abc", &sig).is_err());
    }

    #[test]
    fn invalid_point_is_rejected() {
        // y = 2 is not on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        assert_eq!(PublicKey::from_bytes(&bytes), Err(SignatureError::BadKey));
    }
}
