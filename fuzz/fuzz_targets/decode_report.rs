//! `report::Report` from arbitrary bytes: never panics, accepts only canonical
//! encodings; verification never panics.
#![no_main]

use datdot_fuzz::{AcceptAll, decode_canonical};
use datdot_protocol::identity::Ed25519Verifier;
use datdot_protocol::report::Report;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(report) = decode_canonical::<Report>(data) else {
        return;
    };
    let _ = report.verify(&Ed25519Verifier);
    let _ = report.verify(&AcceptAll);
    // Decoding enforces well-formed metrics.
    assert!(report.metrics.well_formed());
});
