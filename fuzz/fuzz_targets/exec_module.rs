//! `datdot_exec::Program` (wasmi 2.0.0 under our module rules and call ABI) on hostile
//! modules. The first byte picks the mode:
//!
//! - even: raw — the other bytes are the module, straight into `Program::new` (parser,
//!   validator and module-rule crashes);
//! - odd: generated — `wasm_smith` builds a valid module from the other bytes, with a
//!   configuration that keeps most of them inside our rules (no imports, no floats, no
//!   start function, one memory, at most one funcref table, MVP + mutable globals, sign
//!   extension and bulk memory; multi-value is off in our rules) and forced exports `memory`,
//!   `datdot_alloc: (i32) -> i32` and `process: (i32, i32) -> i64` (sometimes with a
//!   wrong type, or a memory over the limit, to reach the refusals). The input (≤ 4 KiB)
//!   is the tail of the data, the fuel cap (≤ 2,000,000) comes from it too.
//!
//! For a generated module, `Program::new` refuses only what the plan predicts (never
//! `Import` or `Memory`; `MemoryTooLarge` / `Alloc` exactly for those plans, besides
//! `Invalid` and `Instantiate`), and `check_entry("process")` fails exactly when the
//! plan made `process` wrong. For every module accepted with a good entry, `process` runs
//! with the input and fuel cap twice on the same `Program` and once on a freshly built
//! one, and:
//!
//! - the three outcomes are equal (determinism; a used `Program` behaves as a fresh one);
//! - `fuel_used <= fuel`; `OutOfFuel` ⇒ `fuel_used == fuel`; `trap` is set exactly when
//!   the status is `Trap`; a failed call has no output; output ≤ `MAX_OUTPUT_BYTES`;
//! - a call that ended (`Ok` or `Trap`) ends the same with exactly `fuel_used` as its
//!   cap, and runs out of fuel with `fuel_used - 1`: wasmi charges a basic block's fuel
//!   up front and leaves the fuel untouched when a charge fails, and nothing on the
//!   host side of a call (placing the input, reading the output) depends on fuel, so
//!   the call's charges are the same sequence under any cap that suffices, summing to
//!   `fuel_used`, and one unit less fails one of them.
//!
//! `DATDOT_FUZZ_STATS=1` prints one `STATS` line per input (mode, plan, what
//! `Program::new` said, the call's status), to measure how many generated modules reach
//! a call: `cargo fuzz run exec_module corpus/exec_module -- -runs=0 2>&1 | grep STATS`.
//! `DATDOT_FUZZ_DUMP=<file>` writes the generated module there (replaying one input).
//!
//! Build it as README.md says (`-O`, `-Cllvm-args=-asan-stack=0`): under full ASan the
//! interpreter's tail-call dispatch recurses once per instruction and overflows the
//! stack, and a debug assertion in wasmi 2.0.0's translator fires on valid modules.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use datdot_exec::vm::MAX_OUTPUT_BYTES;
use datdot_exec::{CallOutcome, CallStatus, ModuleError, Program};
use libfuzzer_sys::fuzz_target;

const ENTRY: &str = "process";
const MAX_FUEL: u64 = 2_000_000;
const MAX_INPUT: usize = 4096;
/// Raw mode has no bytes to spare for these.
const RAW_INPUT: &[u8] = b"datdot exec_module";
const RAW_FUEL: u64 = 100_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        let _ = generated(rest);
    }
});

fn raw(wasm: &[u8]) {
    let program = match Program::new(wasm) {
        Ok(p) => p,
        Err(e) => {
            stats(format_args!("mode=raw new={}", kind(&e)));
            return;
        }
    };
    let status = program
        .check_entry(ENTRY)
        .ok()
        .map(|()| exercise(wasm, &program, RAW_INPUT, RAW_FUEL).status);
    stats(format_args!("mode=raw new=ok call={status:?}"));
}

/// What the forced exports look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `datdot_alloc: (i32) -> i32`, `process: (i32, i32) -> i64`.
    Good,
    /// `datdot_alloc: (i32) -> i64`: refused (`Alloc`).
    AllocType,
    /// `process: (i32, i32) -> i32`: accepted, but not as an entry.
    EntryType,
    /// No `process`.
    NoEntry,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    shape: Shape,
    mem_min: u32,
    mem_max: Option<u32>,
}

impl Plan {
    fn arbitrary(u: &mut Unstructured) -> Result<Plan> {
        let shape = match u.int_in_range(0u8..=15)? {
            13 => Shape::AllocType,
            14 => Shape::EntryType,
            15 => Shape::NoEntry,
            _ => Shape::Good,
        };
        let mem_min = match u.int_in_range(0u32..=15)? {
            12 => u.int_in_range(5..=63)?,
            13 => 64,
            // Over `MAX_MEMORY_PAGES` (only with a good shape, so the refusal is known).
            14 | 15 if shape == Shape::Good => 65,
            n => (n + 1) % 5,
        };
        let mem_max = match u.int_in_range(0u8..=3)? {
            0 => None,
            1 => Some(mem_min),
            2 => Some(mem_min + u.int_in_range(0..=16)?),
            _ => Some(u.int_in_range(mem_min..=200)?),
        };
        Ok(Plan {
            shape,
            mem_min,
            mem_max,
        })
    }

    /// The module whose exports wasm-smith must reproduce (names and types; it makes up
    /// the bodies).
    fn exports_module(&self) -> Vec<u8> {
        const I32: u8 = 0x7f;
        const I64: u8 = 0x7e;
        let alloc: (&[u8], &[u8]) = match self.shape {
            Shape::AllocType => (&[I32], &[I64]),
            _ => (&[I32], &[I32]),
        };
        let entry: Option<(&[u8], &[u8])> = match self.shape {
            Shape::NoEntry => None,
            Shape::EntryType => Some((&[I32, I32], &[I32])),
            _ => Some((&[I32, I32], &[I64])),
        };
        let funcs: Vec<_> = [Some(alloc), entry].into_iter().flatten().collect();
        let n = funcs.len() as u32;

        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let mut types = Vec::new();
        leb(&mut types, n);
        for (params, results) in &funcs {
            types.push(0x60);
            leb(&mut types, params.len() as u32);
            types.extend_from_slice(params);
            leb(&mut types, results.len() as u32);
            types.extend_from_slice(results);
        }
        section(&mut wasm, 1, &types);
        let mut func = Vec::new();
        leb(&mut func, n);
        for i in 0..n {
            leb(&mut func, i);
        }
        section(&mut wasm, 3, &func);
        let mut mem = vec![1];
        match self.mem_max {
            None => {
                mem.push(0);
                leb(&mut mem, self.mem_min);
            }
            Some(max) => {
                mem.push(1);
                leb(&mut mem, self.mem_min);
                leb(&mut mem, max);
            }
        }
        section(&mut wasm, 5, &mem);
        let mut exports = Vec::new();
        leb(&mut exports, 1 + n);
        for (name, kind, index) in [("memory", 2, 0), ("datdot_alloc", 0, 0), (ENTRY, 0, 1)]
            .into_iter()
            .take(1 + n as usize)
        {
            leb(&mut exports, name.len() as u32);
            exports.extend_from_slice(name.as_bytes());
            exports.push(kind);
            leb(&mut exports, index);
        }
        section(&mut wasm, 7, &exports);
        // Bodies: no locals, `unreachable`, `end`.
        let mut code = Vec::new();
        leb(&mut code, n);
        for _ in 0..n {
            code.extend_from_slice(&[3, 0, 0x00, 0x0b]);
        }
        section(&mut wasm, 10, &code);
        wasm
    }
}

fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    leb(out, body.len() as u32);
    out.extend_from_slice(body);
}

/// wasm-smith's configuration: our rules where it has a knob for them, swarm-style
/// choices (from the data) for the sizes and a few rarer behaviours.
fn config(u: &mut Unstructured, plan: &Plan) -> Result<wasm_smith::Config> {
    Ok(wasm_smith::Config {
        exports: Some(plan.exports_module()),
        // Our rules.
        max_imports: 0,
        // The forced `memory` export adds the one memory; any other would be a second.
        max_memories: 0,
        max_tables: 1,
        allow_start_export: false,
        allow_floats: false,
        bulk_memory_enabled: true,
        multi_value_enabled: false,
        sign_extension_ops_enabled: true,
        saturating_float_to_int_enabled: true,
        reference_types_enabled: false,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        tail_call_enabled: false,
        exceptions_enabled: false,
        gc_enabled: false,
        threads_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        extended_const_enabled: false,
        wide_arithmetic_enabled: false,
        compact_imports_enabled: false,
        shared_everything_threads_enabled: false,
        max_tags: 0,
        // Swarm.
        max_types: u.int_in_range(0..=32)?,
        max_funcs: u.int_in_range(0..=32)?,
        max_globals: u.int_in_range(0..=16)?,
        max_instructions: u.int_in_range(0..=400)?,
        max_nesting_depth: u.int_in_range(0..=10)?,
        max_data_segments: u.int_in_range(0..=8)?,
        max_element_segments: u.int_in_range(0..=8)?,
        max_elements: u.int_in_range(0..=64)?,
        // Over `MAX_TABLE_ELEMENTS` now and then: refused at instantiation.
        max_table_elements: if u.ratio(1, 8)? { 10_000 } else { 4096 },
        table_max_size_required: u.arbitrary()?,
        disallow_traps: u.ratio(1, 4)?,
        min_uleb_size: if u.ratio(1, 8)? {
            u.int_in_range(1..=5)?
        } else {
            1
        },
        generate_custom_sections: u.ratio(1, 8)?,
        // Raw bytes as function bodies: near-valid modules for the validator.
        allow_invalid_funcs: u.ratio(1, 16)?,
        ..wasm_smith::Config::default()
    })
}

fn generated(data: &[u8]) -> Result<()> {
    let mut head = Unstructured::new(data);
    let input_len: usize = head.int_in_range(0..=MAX_INPUT)?;
    let rest = head.take_rest();
    // At most half the bytes, so the module keeps some.
    let (module_bytes, input) = rest.split_at(rest.len() - input_len.min(rest.len() / 2));

    let mut u = Unstructured::new(module_bytes);
    let plan = Plan::arbitrary(&mut u)?;
    // Every scale (2^4 to 2,000,000) equally likely; out of data, the whole 2,000,000.
    let cap = (MAX_FUEL >> u.int_in_range(0u32..=17)?).max(1);
    let fuel = cap - u.int_in_range(0..=cap)?;
    let config = config(&mut u, &plan)?;
    let invalid_funcs = config.allow_invalid_funcs;
    let Ok(module) = wasm_smith::Module::new(config, &mut u) else {
        stats(format_args!("mode=gen smith=err"));
        return Ok(());
    };
    let wasm = module.to_bytes();
    if let Some(path) = std::env::var_os("DATDOT_FUZZ_DUMP") {
        // Replaying one input: keep the generated module for a closer look.
        let _ = std::fs::write(path, &wasm);
    }

    let program = match Program::new(&wasm) {
        Ok(p) => p,
        Err(e) => {
            let expected = match (&e, plan.shape) {
                (ModuleError::Invalid(_) | ModuleError::Instantiate(_), _) => true,
                (ModuleError::MemoryTooLarge { pages }, _) => u64::from(plan.mem_min) == *pages,
                (ModuleError::Alloc, Shape::AllocType) => true,
                // `Table` is for exported tables, and wasm-smith exports only ours.
                _ => false,
            };
            assert!(expected, "{plan:?}: refused with {e:?}");
            stats(format_args!(
                "mode=gen plan={plan:?} invalid_funcs={invalid_funcs} new={} why={e}",
                kind(&e)
            ));
            return Ok(());
        }
    };
    assert!(
        plan.mem_min <= 64,
        "{plan:?}: memory over the limit accepted"
    );
    assert_ne!(
        plan.shape,
        Shape::AllocType,
        "a wrong `datdot_alloc` accepted"
    );
    let entry = program.check_entry(ENTRY);
    match plan.shape {
        Shape::Good => entry.expect("`process: (i32, i32) -> i64` refused as an entry"),
        _ => {
            assert_eq!(entry, Err(ModuleError::Entry(ENTRY.into())), "{plan:?}");
            stats(format_args!("mode=gen plan={plan:?} new=ok call=None"));
            return Ok(());
        }
    }
    let outcome = exercise(&wasm, &program, input, fuel);
    stats(format_args!(
        "mode=gen plan={plan:?} new=ok fuel={fuel} call={:?}/{:?} used={}",
        outcome.status, outcome.trap, outcome.fuel_used
    ));
    Ok(())
}

/// Run the oracles on an accepted module whose `process` is a valid entry; the first
/// call's outcome.
fn exercise(wasm: &[u8], program: &Program, input: &[u8], fuel: u64) -> CallOutcome {
    let first = program.call(ENTRY, input, fuel);
    well_formed(&first, fuel);
    let again = program.call(ENTRY, input, fuel);
    assert_eq!(again, first, "the same call twice on one Program differs");
    let fresh = Program::new(wasm).expect("a module accepted once is refused the second time");
    fresh
        .check_entry(ENTRY)
        .expect("an entry accepted once is refused by a fresh Program");
    let on_fresh = fresh.call(ENTRY, input, fuel);
    assert_eq!(on_fresh, first, "a fresh Program and a used one differ");

    if first.status != CallStatus::OutOfFuel {
        let exact = program.call(ENTRY, input, first.fuel_used);
        assert_eq!(
            exact, first,
            "the call differs with exactly its fuel_used as the cap"
        );
        if let Some(less) = first.fuel_used.checked_sub(1) {
            let short = program.call(ENTRY, input, less);
            well_formed(&short, less);
            assert_eq!(
                short.status,
                CallStatus::OutOfFuel,
                "the call did not run out of fuel with fuel_used - 1 as the cap: {short:?} (with {fuel}: {first:?})"
            );
        }
    }
    first
}

fn well_formed(out: &CallOutcome, fuel: u64) {
    assert!(
        out.fuel_used <= fuel,
        "used more than the cap: {out:?} (cap {fuel})"
    );
    if out.status == CallStatus::OutOfFuel {
        assert_eq!(
            out.fuel_used, fuel,
            "out of fuel but not the whole cap used"
        );
    }
    assert_eq!(
        out.trap.is_some(),
        out.status == CallStatus::Trap,
        "trap reason without a trap, or the other way round: {out:?}"
    );
    if out.status != CallStatus::Ok {
        assert!(out.output.is_empty(), "a failed call has output: {out:?}");
    }
    assert!(
        out.output.len() <= MAX_OUTPUT_BYTES,
        "output over the limit"
    );
}

fn kind(e: &ModuleError) -> &'static str {
    match e {
        ModuleError::TooLarge { .. } => "TooLarge",
        ModuleError::Invalid(_) => "Invalid",
        ModuleError::Import(_) => "Import",
        ModuleError::Memory => "Memory",
        ModuleError::MemoryTooLarge { .. } => "MemoryTooLarge",
        ModuleError::Table => "Table",
        ModuleError::Alloc => "Alloc",
        ModuleError::EntryName => "EntryName",
        ModuleError::Entry(_) => "Entry",
        ModuleError::Instantiate(_) => "Instantiate",
        _ => "other",
    }
}

fn stats(line: core::fmt::Arguments) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("DATDOT_FUZZ_STATS").is_some()) {
        eprintln!("STATS {line}");
    }
}
