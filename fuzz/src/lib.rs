//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use core::fmt::Debug;

use datdot_protocol::codec::{Message, from_bytes, to_bytes};
use datdot_protocol::identity::{Domain, Keypair, PublicKey, Signature, Verifier};

/// Decode `data` as a top-level `T`. When that succeeds, assert the encoding is canonical:
/// re-encoding gives back exactly `data`, and decoding that gives the same value.
pub fn decode_canonical<T: Message + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let value = from_bytes::<T>(data).ok()?;
    let again = to_bytes(&value);
    assert_eq!(
        again, data,
        "accepted a non-canonical encoding of {value:?}"
    );
    assert_eq!(from_bytes::<T>(&again).as_ref(), Ok(&value));
    Some(value)
}

/// A verifier that accepts every signature, so the fuzzer reaches the checks that come
/// after signature verification (which it cannot forge).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Verifier for AcceptAll {
    fn verify(&self, _: &PublicKey, _: Domain, _: &[u8], _: &Signature) -> bool {
        true
    }
}

/// A fixed key (seed `[0x42; 32]`) to check block proofs against.
pub fn fixed_key() -> PublicKey {
    Keypair::from_seed(&[0x42; 32]).public()
}
