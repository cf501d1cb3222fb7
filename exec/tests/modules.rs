//! The example job modules, built from `exec/modules` by `scripts/build-modules`: they
//! pass the module rules, and the interpreter gives exactly what the same Rust code gives
//! natively. `scripts/test` builds them before the tests; run `scripts/build-modules`
//! first when running this file alone.
#![allow(clippy::unwrap_used)] // test fixtures: a failed step is a failed test

use std::path::PathBuf;

use datdot_exec::{CallStatus, Program};
use datdot_testkit::noise;
use proptest::prelude::*;

fn module(job: &str) -> Vec<u8> {
    let dir = std::env::var_os("DATDOT_MODULES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/modules"),
        PathBuf::from,
    );
    let path = dir.join(format!("{job}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the example modules first (scripts/build-modules)",
            path.display()
        )
    })
}

fn program(job: &str) -> Program {
    let p = Program::new(&module(job)).expect("example module passes the rules");
    p.check_entry("process").expect("exports process");
    p
}

const FUEL: u64 = 50_000_000;

fn ok(p: &Program, input: &[u8]) -> (Vec<u8>, u64) {
    let out = p.call("process", input, FUEL);
    assert_eq!(out.status, CallStatus::Ok, "{:?}", out.trap);
    (out.output, out.fuel_used)
}

fn text(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "hyper", "core", "Dat", "dot", "feed", "block", "2026", "wasm",
    ];
    let mut out = Vec::new();
    for (i, b) in noise(len / 4, 9).into_iter().enumerate() {
        out.extend_from_slice(WORDS[b as usize % 8].as_bytes());
        out.push(if i % 11 == 10 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

#[test]
fn examples_over_64_kib_blocks_match_native_code() {
    let rgb = noise(64 * 1024, 1);
    let (gray, fuel) = ok(&program("grayscale"), &rgb);
    assert_eq!(gray, datdot_modules::grayscale(&rgb));
    assert!(
        fuel > 64 * 1024 / 3,
        "a loop iteration per pixel costs fuel"
    );
    let words = text(64 * 1024);
    let (freq, _) = ok(&program("wordfreq"), &words);
    assert_eq!(freq, datdot_modules::word_frequency(&words));
    let mut spin = 1000u32.to_le_bytes().to_vec();
    spin.extend(noise(1024, 3));
    let (state, _) = ok(&program("spin"), &spin);
    assert_eq!(state, datdot_modules::spin(&spin));
}

#[test]
fn spin_costs_fuel_in_proportion_to_its_rounds_and_runs_out() {
    let p = program("spin");
    let cost = |rounds: u32| ok(&p, &rounds.to_le_bytes()).1;
    let (a, b, c) = (cost(0), cost(1000), cost(2000));
    assert_eq!(c - b, b - a, "the same fuel per round");
    assert!(b > a);
    // Fewer than 4 input bytes: "forever".
    let forever = p.call("process", b"", 1_000_000);
    assert_eq!(
        (forever.status, forever.fuel_used),
        (CallStatus::OutOfFuel, 1_000_000)
    );
    let exact = p.call("process", &1000u32.to_le_bytes(), b);
    assert_eq!(exact.status, CallStatus::Ok);
    assert_eq!(
        p.call("process", &1000u32.to_le_bytes(), b - 1).status,
        CallStatus::OutOfFuel
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn the_interpreter_agrees_with_native_code_on_any_input(
        input in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        for (job, native) in [
            ("grayscale", datdot_modules::grayscale as fn(&[u8]) -> Vec<u8>),
            ("wordfreq", datdot_modules::word_frequency),
        ] {
            let p = program(job);
            let a = p.call("process", &input, FUEL);
            prop_assert_eq!(a.status, CallStatus::Ok);
            prop_assert_eq!(&a.output, &native(&input));
            prop_assert_eq!(a, program(job).call("process", &input, FUEL));
        }
    }
}
