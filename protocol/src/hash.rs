//! BLAKE2b-256, the one hash function of the protocol (and of Hypercore's merkle tree).

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

/// A 32-byte BLAKE2b-256 digest.
pub type Hash = [u8; 32];

/// BLAKE2b-256 of the concatenation of `parts` (no separators: callers frame their input).
pub fn blake2b256(parts: &[&[u8]]) -> Hash {
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// An `rs_merkle` hasher using BLAKE2b-256, for the report's root over received block hashes.
#[derive(Clone, Copy, Debug)]
pub struct Blake2bMerkle;

impl rs_merkle::Hasher for Blake2bMerkle {
    type Hash = Hash;
    fn hash(data: &[u8]) -> Hash {
        blake2b256(&[data])
    }
}

/// Merkle root (rs_merkle, BLAKE2b-256) over `leaves` in order; all zeros when empty.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    rs_merkle::MerkleTree::<Blake2bMerkle>::from_leaves(leaves)
        .root()
        .unwrap_or([0u8; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2b256_matches_known_vector() {
        // BLAKE2b-256("abc") from RFC 7693's reference implementation.
        let h = blake2b256(&[b"a", b"bc"]);
        assert_eq!(
            h[..8],
            [0xbd, 0xdd, 0x81, 0x3c, 0x63, 0x42, 0x39, 0x72],
            "BLAKE2b-256(abc)"
        );
    }

    #[test]
    fn merkle_root_depends_on_order_and_content() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        assert_ne!(merkle_root(&[a]), merkle_root(&[a, a]));
        assert_eq!(merkle_root(&[]), [0u8; 32]);
    }
}
