//! Cryptographic functions.

mod hash;
mod key_pair;
mod manifest;

pub(crate) use hash::signable_tree;
pub use key_pair::{PartialKeypair, generate as generate_signing_key, sign, verify};
pub(crate) use manifest::{Manifest, ManifestSigner, default_signer_manifest};
