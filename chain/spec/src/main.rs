//! `datdot-chain-spec`: writes `chain/metadata.scale` and the raw dev chain spec.
//!
//! ```text
//! datdot-chain-spec metadata [OUT]                  # default chain/metadata.scale
//! datdot-chain-spec spec --wasm RUNTIME.wasm [--salt HEX64] [OUT]
//!                                                   # default target/chainspec-raw.json;
//!                                                   # salt: genesis salt (default zeros)
//! ```

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("metadata") => {
            let out = args.get(1).map_or("chain/metadata.scale", String::as_str);
            let bytes = datdot_chain_spec::metadata()?;
            std::fs::write(out, &bytes).with_context(|| format!("writing {out}"))?;
            println!("wrote {out} ({} bytes)", bytes.len());
        }
        Some("spec") => {
            const USAGE: &str =
                "usage: datdot-chain-spec spec --wasm RUNTIME.wasm [--salt HEX64] [OUT]";
            let (Some("--wasm"), Some(wasm)) = (args.get(1).map(String::as_str), args.get(2))
            else {
                bail!(USAGE);
            };
            let mut rest = &args[3..];
            let mut salt = [0u8; 32];
            if rest.first().map(String::as_str) == Some("--salt") {
                let hex = rest.get(1).context(USAGE)?;
                salt = parse_salt(hex).with_context(|| format!("--salt {hex}: {USAGE}"))?;
                rest = &rest[2..];
            }
            let out = rest
                .first()
                .map_or("target/chainspec-raw.json", String::as_str);
            let code = std::fs::read(wasm).with_context(|| format!("reading {wasm}"))?;
            let spec = datdot_chain_spec::raw_chain_spec(&code, salt)?;
            std::fs::write(out, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("writing {out}"))?;
            println!("wrote {out} (runtime {} bytes)", code.len());
        }
        _ => bail!(
            "usage: datdot-chain-spec metadata [OUT] | spec --wasm RUNTIME.wasm [--salt HEX64] [OUT]"
        ),
    }
    Ok(())
}

/// 64 hex digits (an optional `0x` in front).
fn parse_salt(hex: &str) -> Result<[u8; 32]> {
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    anyhow::ensure!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "expected 64 hex digits"
    );
    let mut salt = [0u8; 32];
    for (i, b) in salt.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(salt)
}
