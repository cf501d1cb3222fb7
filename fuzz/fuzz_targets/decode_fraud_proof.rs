//! `fraud::FraudProof` from arbitrary bytes: never panics, accepts only canonical
//! encodings; verification never panics and a verdict names the accused.
#![no_main]

use datdot_fuzz::{AcceptAll, decode_canonical};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::identity::Ed25519Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(proof) = decode_canonical::<FraudProof>(data) else {
        return;
    };
    // The real verifier (signatures cannot be forged, so this mostly rejects), then one
    // that accepts every signature to reach the checks behind them.
    for verdict in [proof.verify(&Ed25519Verifier), proof.verify(&AcceptAll)]
        .into_iter()
        .flatten()
    {
        assert_eq!(&verdict.offender, proof.accused());
        assert_eq!(verdict.session(), proof.session());
    }
});
