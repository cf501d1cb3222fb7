//! The interpreter's rules and the call ABI, on small hand-written modules.
#![allow(clippy::unwrap_used)] // test fixtures: a failed step is a failed test

use datdot_exec::vm::{MAX_MEMORY_PAGES, MAX_MODULE_BYTES, MAX_OUTPUT_BYTES};
use datdot_exec::{CallStatus, ModuleError, Program, Trap};
use datdot_testkit::abi_module as module_with;
use proptest::prelude::*;

/// A module with 8 pages of memory, a bump `datdot_alloc` and `$body` as `process`'s body (locals: none
/// beyond the two parameters `$ptr`, `$len`).
fn module(body: &str) -> Vec<u8> {
    module_with("", body)
}

/// `process` returns its input unchanged.
fn echo() -> Vec<u8> {
    module(
        "(i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
                 (i64.extend_i32_u (local.get $len)))",
    )
}

/// `process` reverses its input in place, one byte per loop iteration.
fn reverse() -> Vec<u8> {
    datdot_testkit::reverse_wasm()
}

fn program(wasm: &[u8]) -> Program {
    Program::new(wasm).expect("module is valid")
}

#[test]
fn a_call_returns_its_output_and_the_fuel_it_used() {
    let p = program(&reverse());
    p.check_entry("process").unwrap();
    let out = p.call("process", b"hello", 1_000_000);
    assert_eq!(out.status, CallStatus::Ok);
    assert_eq!(out.output, b"olleh");
    assert!(out.fuel_used > 0);
    // More input, more loop iterations, more fuel; exactly the same again.
    let longer = p.call("process", b"hello world", 1_000_000);
    assert!(longer.fuel_used > out.fuel_used);
    assert_eq!(p.call("process", b"hello", 1_000_000), out);
}

#[test]
fn a_fresh_program_charges_the_same_fuel_as_a_used_one() {
    // Eager compilation: nothing is charged on first use that a later call skips.
    let wasm = reverse();
    let used = program(&wasm);
    for _ in 0..3 {
        used.call("process", b"warm up", 1_000_000);
    }
    let a = used.call("process", b"determinism", 1_000_000);
    let b = program(&wasm).call("process", b"determinism", 1_000_000);
    assert_eq!(a, b);
}

#[test]
fn a_call_with_exactly_its_fuel_succeeds_and_one_less_runs_out() {
    let p = program(&reverse());
    let need = p.call("process", b"abcdefgh", 1_000_000).fuel_used;
    let exact = p.call("process", b"abcdefgh", need);
    assert_eq!(exact.status, CallStatus::Ok);
    assert_eq!(exact.fuel_used, need);
    let short = p.call("process", b"abcdefgh", need - 1);
    assert_eq!(short.status, CallStatus::OutOfFuel);
    assert_eq!(short.fuel_used, need - 1, "out of fuel uses the whole cap");
    assert!(short.output.is_empty());
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let p = program(&module("(loop $l (br $l)) (unreachable)"));
    let out = p.call("process", b"x", 50_000);
    assert_eq!(out.status, CallStatus::OutOfFuel);
    assert_eq!(out.fuel_used, 50_000);
}

#[test]
fn a_loop_at_the_chains_fuel_cap_does_not_grow_the_native_stack() {
    // With wasmi's tail-call dispatch (its default) this overflowed the test thread's
    // stack and aborted the process; the portable dispatch runs it in constant stack.
    let p = program(&module("(loop $l (br $l)) (unreachable)"));
    let out = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || p.call("process", b"x", 20_000_000))
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert_eq!(out.status, CallStatus::OutOfFuel);
}

#[test]
fn traps_are_a_status_not_a_failure() {
    let cases = [
        ("(unreachable)", "unreachable"),
        (
            "(drop (i32.div_u (i32.const 1) (i32.sub (local.get $len) (local.get $len)))) (i64.const 0)",
            "division by zero",
        ),
        (
            "(drop (i32.load (i32.const -1))) (i64.const 0)",
            "load out of bounds",
        ),
    ];
    for (body, what) in cases {
        let out = program(&module(body)).call("process", b"x", 1_000_000);
        assert_eq!(out.status, CallStatus::Trap, "{what}");
        assert_eq!(out.trap, Some(Trap::Wasm), "{what}");
        assert!(out.fuel_used > 0 || what == "unreachable", "{what}");
    }
}

#[test]
fn unbounded_recursion_traps() {
    let wasm = module_with(
        "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
        "(i64.extend_i32_u (call $down (i32.const 0)))",
    );
    let out = program(&wasm).call("process", b"", 100_000_000);
    assert_eq!(out.status, CallStatus::Trap);
}

#[test]
fn outputs_outside_memory_or_over_the_limit_trap() {
    let over = MAX_OUTPUT_BYTES as u64 + 1;
    let cases = [
        (format!("(i64.const {over})"), Trap::OutputTooLarge),
        // 1 KiB at the very end of the 8-page memory and beyond it.
        (
            format!("(i64.const {})", (524_000u64 << 32) | 1024),
            Trap::BadOutputPointer,
        ),
        (
            format!("(i64.const {})", 0xffff_ffffu64 << 32),
            Trap::BadOutputPointer,
        ),
    ];
    for (body, trap) in cases {
        let out = program(&module(&body)).call("process", b"x", 1_000_000);
        assert_eq!(
            (out.status, out.trap),
            (CallStatus::Trap, Some(trap)),
            "{body}"
        );
    }
    // An empty output anywhere in memory is fine.
    let out = program(&module("(i64.const 0)")).call("process", b"x", 1_000_000);
    assert_eq!(out.status, CallStatus::Ok);
    assert!(out.output.is_empty());
}

#[test]
fn an_allocator_that_points_outside_memory_traps() {
    let src = r#"(module (memory (export "memory") 1)
      (func (export "datdot_alloc") (param i32) (result i32) (i32.const 65000))
      (func (export "process") (param i32 i32) (result i64) (i64.const 0)))"#;
    let out = program(&wat::parse_str(src).unwrap()).call("process", &[7; 1000], 1_000_000);
    assert_eq!(
        (out.status, out.trap),
        (CallStatus::Trap, Some(Trap::BadInputPointer))
    );
}

#[test]
fn memory_grows_to_the_limit_and_no_further() {
    // The module starts at 2 pages and grows by a constant number of pages; the
    // output is empty at the old size (or at 0xffff_ffff: -1, outside memory).
    let body_result = |pages: u32| {
        let src = format!(
            r#"(module (memory (export "memory") 2)
              (func (export "datdot_alloc") (param i32) (result i32) (i32.const 0))
              (func (export "process") (param i32 i32) (result i64)
                (i64.shl (i64.extend_i32_s (memory.grow (i32.const {pages}))) (i64.const 32))))"#
        );
        let out = program(&wat::parse_str(&src).unwrap()).call("process", b"", 1_000_000);
        (out.status, out.trap)
    };
    // Growing to exactly the limit succeeds (old size 2, output empty at offset 2).
    assert_eq!(body_result(MAX_MEMORY_PAGES - 2), (CallStatus::Ok, None));
    // One page more returns -1: the output pointer 0xffff_ffff is outside memory.
    assert_eq!(
        body_result(MAX_MEMORY_PAGES - 1),
        (CallStatus::Trap, Some(Trap::BadOutputPointer))
    );
}

#[test]
fn inputs_over_the_limit_are_not_run() {
    let p = program(&echo());
    let out = p.call(
        "process",
        &vec![0; datdot_exec::vm::MAX_INPUT_BYTES + 1],
        u64::MAX,
    );
    assert_eq!(
        (out.status, out.fuel_used, out.trap),
        (CallStatus::Trap, 0, Some(Trap::InputTooLarge))
    );
    let ok = p.call(
        "process",
        &vec![9; datdot_exec::vm::MAX_INPUT_BYTES],
        1_000_000,
    );
    assert_eq!(ok.output.len(), datdot_exec::vm::MAX_INPUT_BYTES);
}

fn refused(src: &str) -> ModuleError {
    let wasm = wat::parse_str(src).expect("test module parses");
    Program::new(&wasm).expect_err("module is refused")
}

#[test]
fn hostile_and_invalid_modules_are_refused_at_upload() {
    const ABI: &str = r#"(func (export "datdot_alloc") (param i32) (result i32) (i32.const 0))
      (func (export "process") (param i32 i32) (result i64) (i64.const 0))"#;
    let m = |extra: &str| format!("(module {extra} {ABI})");
    assert!(matches!(
        refused(&m(
            r#"(import "env" "clock" (func)) (memory (export "memory") 1)"#
        )),
        ModuleError::Import(_)
    ));
    assert!(matches!(
        refused(&m(
            r#"(import "env" "mem" (memory 1)) (export "memory" (memory 0))"#
        )),
        ModuleError::Import(_)
    ));
    assert!(matches!(
        refused(&m(
            r#"(memory (export "memory") 1) (func (result f32) (f32.const 1))"#
        )),
        ModuleError::Invalid(_)
    ));
    assert!(matches!(
        refused(&m(r#"(memory (export "memory") 1) (func $s) (start $s)"#)),
        ModuleError::Invalid(_)
    ));
    assert_eq!(refused(&m("")), ModuleError::Memory);
    assert_eq!(refused(&m("(memory 1)")), ModuleError::Memory);
    assert_eq!(
        refused(&m(r#"(memory (export "mem") 1)"#)),
        ModuleError::Memory
    );
    assert_eq!(
        refused(&m(&format!(
            r#"(memory (export "memory") {})"#,
            MAX_MEMORY_PAGES + 1
        ))),
        ModuleError::MemoryTooLarge {
            pages: u64::from(MAX_MEMORY_PAGES) + 1
        }
    );
    assert_eq!(
        refused(&m(
            r#"(memory (export "memory") 1) (table (export "t") 100000 funcref)"#
        )),
        ModuleError::Table
    );
    assert!(matches!(
        refused(&m(
            r#"(memory (export "memory") 1) (data (i32.const 65530) "0123456789")"#
        )),
        ModuleError::Instantiate(_)
    ));
    // Reference types, tail calls: off.
    assert!(matches!(
        refused(&m(
            r#"(memory (export "memory") 1) (func (drop (ref.null func)))"#
        )),
        ModuleError::Invalid(_)
    ));
    assert!(matches!(
        refused(&m(
            r#"(memory (export "memory") 1) (func $f (return_call $f))"#
        )),
        ModuleError::Invalid(_)
    ));
    // The allocator's type.
    assert_eq!(
        refused(
            r#"(module (memory (export "memory") 1)
            (func (export "datdot_alloc") (param i64) (result i32) (i32.const 0)))"#
        ),
        ModuleError::Alloc
    );
    assert_eq!(
        refused(r#"(module (memory (export "memory") 1))"#),
        ModuleError::Alloc
    );
    // Not WebAssembly, too large.
    assert!(matches!(
        Program::new(b"\0asm\x01\0\0\0garbage"),
        Err(ModuleError::Invalid(_))
    ));
    assert!(matches!(
        Program::new(b"hello"),
        Err(ModuleError::Invalid(_))
    ));
    assert_eq!(
        Program::new(&vec![0; MAX_MODULE_BYTES + 1]).unwrap_err(),
        ModuleError::TooLarge {
            got: MAX_MODULE_BYTES + 1
        }
    );
}

#[test]
fn a_block_parameter_consumed_by_a_local_is_refused_not_a_panic() {
    // Found by fuzz/exec_module: wasmi 2.0.0's translator trips a debug assertion ("a
    // register operand already exists on the stack") on this valid module, a panic in
    // `Program::new` in any build with debug assertions. Block parameters need
    // multi-value, which the configuration now turns off.
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
          (func (export "datdot_alloc") (param i32) (result i32) (i32.const 0))
          (func (export "process") (param $ptr i32) (param $len i32) (result i64)
            memory.size
            local.get $len
            if (param i32) (result i64)
              local.set $ptr
              i64.const 5
            else
              i64.extend_i32_u
            end))"#,
    )
    .expect("parses");
    assert!(matches!(Program::new(&wasm), Err(ModuleError::Invalid(_))));
}

#[test]
fn operators_after_a_functions_end_are_refused_not_a_panic() {
    // Found by fuzz/exec_module: a `nop` after the last `end` of a function body trips
    // a `debug_assert!` in wasmi 2.0.0's fuel translator before validation refuses it.
    // The test build compiles wasmi without debug assertions, as release builds and the
    // runtime do (root Cargo.toml, DESIGN §18.2).
    let wasm = hex::decode(
        "0061736d01000000010c0260017f017f60027f7f017f03030200010503010000072303066d656d6f72\
         7902000c646174646f745f616c6c6f6300000770726f6365737300010c01010a11020a000000000b01\
         00000000040000000b0b06010041000b00",
    )
    .expect("hex");
    assert!(matches!(Program::new(&wasm), Err(ModuleError::Invalid(_))));
}

#[test]
fn entries_are_checked_by_name_and_type() {
    let p = program(&module_with(
        r#"(func (export "wrong") (param i32) (result i64) (i64.const 0))"#,
        "(i64.const 0)",
    ));
    assert_eq!(p.check_entry("process"), Ok(()));
    assert!(matches!(p.check_entry("wrong"), Err(ModuleError::Entry(_))));
    assert!(matches!(
        p.check_entry("missing"),
        Err(ModuleError::Entry(_))
    ));
    assert!(matches!(
        p.check_entry("memory"),
        Err(ModuleError::Entry(_))
    ));
    assert_eq!(p.check_entry(""), Err(ModuleError::EntryName));
    assert_eq!(p.check_entry("a b"), Err(ModuleError::EntryName));
    assert_eq!(p.check_entry(&"a".repeat(33)), Err(ModuleError::EntryName));
    // Calling an entry that does not exist traps rather than panics.
    assert_eq!(p.call("missing", b"", 1000).status, CallStatus::Trap);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn repeated_calls_agree_and_fuel_is_what_the_input_needs(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        fuel in 0u64..200_000,
    ) {
        let p = program(&reverse());
        let a = p.call("process", &input, fuel);
        prop_assert_eq!(&a, &p.call("process", &input, fuel));
        let full = p.call("process", &input, u64::MAX / 2);
        prop_assert_eq!(full.status, CallStatus::Ok);
        let mut rev = input.clone();
        rev.reverse();
        prop_assert_eq!(&full.output, &rev);
        // With enough fuel the same call; with less, out of fuel at the cap.
        if fuel >= full.fuel_used {
            prop_assert_eq!(&a, &full);
        } else {
            prop_assert_eq!((a.status, a.fuel_used), (CallStatus::OutOfFuel, fuel));
        }
    }
}
