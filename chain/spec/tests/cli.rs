//! The `datdot-chain-spec` binary as `scripts/devnet-chain` runs it: a raw chain spec
//! whose `:code` is exactly the wasm it was given and whose genesis is the library's,
//! and the metadata file. (Being an integration test also makes `cargo test
//! --workspace` build the binary with the workspace's feature resolution, so
//! `scripts/test` hands that build to `scripts/devnet-chain` instead of rebuilding the
//! native runtime for it.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_datdot-chain-spec"))
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

#[test]
fn spec_holds_the_given_wasm_as_code_and_the_library_genesis() {
    let dir = tempfile::tempdir().unwrap();
    // Not a runtime: the tool copies the bytes, it does not execute them.
    let wasm: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect();
    let wasm_path = dir.path().join("runtime.wasm");
    std::fs::write(&wasm_path, &wasm).unwrap();
    let out = dir.path().join("spec.json");
    let salt = [0xa5; 32];
    let run = tool()
        .arg("spec")
        .arg("--wasm")
        .arg(&wasm_path)
        .args(["--salt", &hex::encode(salt)])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let top = spec["genesis"]["raw"]["top"].as_object().expect("raw top");
    // `:code` is the well-known storage key 0x3a636f6465.
    assert_eq!(top["0x3a636f6465"].as_str(), Some(hex(&wasm).as_str()));
    for (k, v) in datdot_chain_spec::genesis_storage(salt).unwrap() {
        assert_eq!(
            top[&hex(&k)].as_str(),
            Some(hex(&v).as_str()),
            "genesis entry {}",
            hex(&k)
        );
    }
}

#[test]
fn metadata_written_is_the_runtime_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("metadata.scale");
    let run = tool().arg("metadata").arg(&out).output().unwrap();
    assert!(run.status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        datdot_chain_spec::metadata().unwrap()
    );
}

#[test]
fn bad_usage_and_missing_wasm_are_errors() {
    let run = tool().arg("spec").output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("usage"));
    let run = tool()
        .args(["spec", "--wasm", "/nonexistent/runtime.wasm", "/dev/null"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("reading /nonexistent"));
    let run = tool()
        .args(["spec", "--wasm", "/dev/null", "--salt", "12", "/dev/null"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("64 hex digits"));
}
