//! Noise static identities: an ed25519 keypair (what Hypercore's secret-stream uses as
//! its Noise "Ed25519" DH key) from a 32-byte seed.

use std::fmt;

use ed25519_dalek::SigningKey;
use rand::RngCore;

/// A Noise static keypair. The listener uses the node's persistent one; a dialer can
/// use a fresh one (`generate`).
#[derive(Clone)]
pub struct NoiseIdentity {
    seed: [u8; 32],
    public: [u8; 32],
}

impl NoiseIdentity {
    /// From a persistent 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        NoiseIdentity { seed, public }
    }

    /// A fresh random identity (OS randomness).
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// The static public key peers pin.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    pub(crate) fn snow_keypair(&self) -> hypercore_handshake::state_machine::hc_specific::Keypair {
        hypercore_handshake::snow_keypair_from_secret_and_public(self.seed, self.public)
    }
}

impl fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoiseIdentity({})", hex_short(&self.public))
    }
}

/// First 8 bytes of a key in hex, for logs.
pub fn hex_short(k: &[u8; 32]) -> String {
    k[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Full hex of a key.
pub fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}
