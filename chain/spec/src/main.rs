//! `datdot-chain-spec`: writes `chain/metadata.scale` and the raw dev chain spec.
//!
//! ```text
//! datdot-chain-spec metadata [OUT]                  # default chain/metadata.scale
//! datdot-chain-spec spec --wasm RUNTIME.wasm [OUT]  # default target/chainspec-raw.json
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
            let (Some("--wasm"), Some(wasm)) = (args.get(1).map(String::as_str), args.get(2))
            else {
                bail!("usage: datdot-chain-spec spec --wasm RUNTIME.wasm [OUT]");
            };
            let out = args
                .get(3)
                .map_or("target/chainspec-raw.json", String::as_str);
            let code = std::fs::read(wasm).with_context(|| format!("reading {wasm}"))?;
            let spec = datdot_chain_spec::raw_chain_spec(&code)?;
            std::fs::write(out, serde_json::to_vec_pretty(&spec)?)
                .with_context(|| format!("writing {out}"))?;
            println!("wrote {out} (runtime {} bytes)", code.len());
        }
        _ => bail!("usage: datdot-chain-spec metadata [OUT] | spec --wasm RUNTIME.wasm [OUT]"),
    }
    Ok(())
}
