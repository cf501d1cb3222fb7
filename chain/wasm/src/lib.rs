//! Links `datdot-runtime` (without `std`) into a wasm blob exporting the runtime API.
#![no_std]
pub use datdot_runtime::*;
