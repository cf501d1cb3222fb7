//! `tree::BlockProof` from arbitrary bytes: never panics, accepts only canonical
//! encodings; verification against a fixed feed key never panics.
#![no_main]

use datdot_fuzz::{decode_canonical, fixed_key};
use datdot_protocol::tree::BlockProof;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(proof) = decode_canonical::<BlockProof>(data) else {
        return;
    };
    let key = fixed_key();
    let _ = proof.verify(&key);
    let _ = proof.root.verify(&key);
    // Any data of the proven leaf's size (bounded, to keep the target fast).
    if proof.leaf.size <= 64 {
        let data = vec![0u8; proof.leaf.size as usize];
        let _ = proof.verify_block(&key, &data);
    }
    let _ = proof.verify_block(&key, &[]);
});
