//! The `wordfreq` job module: [`datdot_modules::word_frequency`] behind the call ABI (see
//! `datdot-modules`). Built by `scripts/build-modules` into `target/modules/wordfreq.wasm`.
#![no_std]

datdot_module_abi::job!(datdot_modules::word_frequency);
