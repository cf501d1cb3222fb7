//! Interop with real JavaScript Hypercore (npm `hypercore@10.38.2`, installed by
//! `npm ci` in `interop/`, which `scripts/test` runs): a JS writer's feed replicated into
//! our fetcher and verified; a JS reader replicating from our server, receipts included.
//! Skipped (with a message) when `node` or `interop/node_modules` is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use datdot_net::{Expect, FetchOptions, dial, fetch};

fn interop_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop");
    let ok = dir.join("node_modules/hypercore").exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    // Under CI (`scripts/test` runs `npm ci` first) a missing peer is a failure, not a skip.
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI: interop/node_modules/hypercore or node is missing; scripts/test runs `npm ci` in interop/"
    );
    if !ok {
        eprintln!("SKIPPED: run `npm ci` in interop/ (and install node) for the JS interop tests");
    }
    ok.then_some(dir)
}

/// The string value of `"field":"..."` or number of `"field":123` in a JSON line.
fn field(line: &str, name: &str) -> String {
    let pat = format!("\"{name}\":");
    let rest = &line[line
        .find(&pat)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + pat.len()..];
    let rest = rest.trim_start_matches('"');
    rest.split(['"', ',', '}']).next().unwrap().to_string()
}

fn hex32(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writer_feed_replicates_into_rust_verified() {
    let Some(dir) = interop_dir() else { return };
    let mut child = Command::new("node")
        .arg(dir.join("writer.js"))
        .args(["300", "4096"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let key = hex32(&field(&line, "key"));
    let noise = hex32(&field(&line, "noise"));
    let port: u16 = field(&line, "port").parse().unwrap();

    let conn = dial(
        ([127, 0, 0, 1], port).into(),
        Expect::Key(noise),
        &test_limits(),
    )
    .await
    .unwrap();
    let core = reader(key).await;
    let opts = FetchOptions {
        end_grace: Some(Duration::from_millis(200)),
        ..FetchOptions::default()
    };
    let report = fetch(conn, key, &core, &opts, &mut |_| {}).await;
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    let report = report.unwrap();
    assert_eq!(report.blocks, 300);
    for i in [0, 1, 150, 299] {
        assert_eq!(
            core.get(i).await.unwrap().unwrap(),
            block(i, 4096),
            "block {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_reader_replicates_from_rust_server_with_receipts() {
    let Some(dir) = interop_dir() else { return };
    let w = writer(250, 4096, None).await;
    let key = key_of(&w);
    let feeds = Feeds::default();
    feeds.0.lock().unwrap().push((key, w));
    let srv = server(feeds, test_limits()).await;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let child = tokio::process::Command::new("node")
        .arg(dir.join("reader.js"))
        .args([srv.addr.port().to_string(), hex, "4096".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("JS reader finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(field(&stdout, "length"), "250", "{stdout}");
    assert_eq!(
        field(&stdout, "bytes"),
        (250 * 4096).to_string(),
        "{stdout}"
    );
    // Receipts every 100 blocks (100, 100) and one (50) after the reader's `datdot/v1/end`.
    assert_eq!(field(&stdout, "receiptEntries"), "250", "{stdout}");
}
