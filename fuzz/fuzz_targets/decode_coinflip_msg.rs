//! `coinflip::Msg` from arbitrary bytes: never panics, accepts only canonical encodings.
#![no_main]

use datdot_fuzz::{AcceptAll, decode_canonical};
use datdot_protocol::coinflip::Msg;
use datdot_protocol::identity::Ed25519Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(msg) = decode_canonical::<Msg>(data) else {
        return;
    };
    let _ = (msg.session(), msg.round());
    match &msg {
        Msg::Commit(c) => {
            let _ = c.verify(&Ed25519Verifier);
        }
        Msg::Reveal(r) => {
            let _ = r.verify(&Ed25519Verifier);
        }
        Msg::Confirm(c) => {
            let _ = c.verify(&Ed25519Verifier);
        }
        Msg::Fraud(p) => {
            let _ = p.verify(&Ed25519Verifier);
            let _ = p.verify(&AcceptAll);
        }
        _ => {}
    }
});
