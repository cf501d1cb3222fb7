//! The `grayscale` job module: [`datdot_modules::grayscale`] behind the call ABI (see
//! `datdot-modules`). Built by `scripts/build-modules` into `target/modules/grayscale.wasm`.
#![no_std]

datdot_module_abi::job!(datdot_modules::grayscale);
