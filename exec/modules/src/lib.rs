//! # datdot-modules
//!
//! The logic of datdot's example jobs, as pure functions from input bytes to output
//! bytes. The same code runs natively (tests, and the benches that compare native and
//! interpreted speed) and inside the wasm job modules that `scripts/build-modules`
//! builds from `exec/modules/wasm/` (one `cdylib` per job, each a thin wrapper around
//! one function here).
//!
//! | job         | function             | wasm file       |
//! |-------------|----------------------|-----------------|
//! | `grayscale` | [`grayscale`]        | `grayscale.wasm` |
//! | `wordfreq`  | [`word_frequency`]   | `wordfreq.wasm` |
//! | `spin`      | [`spin`]             | `spin.wasm`     |
//!
//! ## The call ABI of a job module
//! What `datdot-exec` accepts and how it calls a module (the host side is defined there;
//! this is the contract the wrappers are written to):
//! - No imports, no start function, no float types or instructions; WebAssembly 1.0
//!   plus mutable globals (sign extension and bulk memory are allowed, multi-value is not; the
//!   `wasm32v1-none` target emits none of them).
//! - Exports `memory` (the only memory: initial size at most 16 pages = 1 MiB, growable to
//!   64 pages = 4 MiB, beyond which `memory.grow` returns -1; the modules also declare
//!   that maximum), `datdot_alloc: (i32 len) -> i32 ptr` (a pointer to `len` writable
//!   bytes, or a trap) and `process: (i32 ptr, i32 len) -> i64`, which reads its input at
//!   `ptr..ptr+len` and returns `(out_ptr << 32) | out_len` (both as unsigned 32-bit
//!   values), the output being at most 256 KiB.
//! - Every call is a fresh instance: instantiate, `datdot_alloc(input_len)`, write the
//!   input there, `process(ptr, input_len)`, read the output. The wrappers therefore use
//!   a bump allocator that never frees; running out of memory traps.
//!
//! ## Goals
//! - Deterministic, integer-only jobs whose result any party can recompute.
//! - Small modules (a few KiB), so a job's code is cheap to store and to ship.
//! - One job ([`spin`]) whose cost is set by its input, to exhaust fuel on purpose and
//!   to measure fuel against time.
//!
//! ## Non-goals
//! - Image decoding or Unicode text handling: inputs are raw pixels and bytes.
//! - Sharing code between jobs at run time: each module is self-contained.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod grayscale;
mod spin;
mod wordfreq;

pub use grayscale::grayscale;
pub use spin::{SPIN_FOREVER, spin};
pub use wordfreq::{WORD_FREQUENCY_MAX_OUTPUT, WORD_FREQUENCY_MAX_WORDS, word_frequency};
