//! `receipt::SignedReceipt` from arbitrary bytes: never panics, accepts only canonical
//! encodings; verification never panics.
#![no_main]

use datdot_fuzz::{AcceptAll, decode_canonical};
use datdot_protocol::identity::Ed25519Verifier;
use datdot_protocol::receipt::SignedReceipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(receipt) = decode_canonical::<SignedReceipt>(data) else {
        return;
    };
    let _ = receipt.verify(&Ed25519Verifier);
    let ok = receipt.verify(&AcceptAll).is_ok();
    assert_eq!(
        ok,
        !receipt.entries.is_empty(),
        "only the entry count is left to check"
    );
    let _ = receipt.verify_for(
        &Ed25519Verifier,
        &receipt.chain,
        &receipt.hoster,
        &receipt.feed,
        &receipt.remote,
        receipt.seq,
    );
});
