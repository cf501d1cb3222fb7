//! The `spin` job module: [`datdot_modules::spin`] behind the call ABI (see
//! `datdot-modules`). Built by `scripts/build-modules` into `target/modules/spin.wasm`.
#![no_std]

datdot_module_abi::job!(datdot_modules::spin);
