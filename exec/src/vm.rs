//! The interpreter: one engine configuration, the module rules, one call.
//!
//! Everything here is consensus: the executor, every monitor and the chain's re-run of
//! a disputed call build the engine with [`config`] and run a call with
//! [`Program::call`], so the same module, entry, input and fuel cap give the same
//! output, fuel and status everywhere (native or inside the wasm runtime).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use wasmi::{
    CompilationMode, Config, EnforcedLimits, Engine, ExternType, FuncType, Linker, Module, Store,
    StoreLimits, StoreLimitsBuilder, TrapCode, ValType,
};

use crate::record::CallStatus;

/// Largest module accepted (bytes of the binary).
pub const MAX_MODULE_BYTES: usize = 128 * 1024;
/// Largest memory a call may have, in 64 KiB pages (initial size and every growth):
/// 4 MiB. A `memory.grow` past it returns -1.
pub const MAX_MEMORY_PAGES: u32 = 64;
/// Largest input of one call (one input block).
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Largest output of one call; a call that returns more ends as [`CallStatus::Trap`].
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Longest entry function name.
pub const MAX_ENTRY_NAME: usize = 32;
/// Most table elements (the table `call_indirect` uses).
pub const MAX_TABLE_ELEMENTS: u32 = 4096;
/// Deepest call nesting; deeper traps.
pub const MAX_RECURSION_DEPTH: usize = 1024;
/// Largest value stack of a call, in bytes; larger traps.
pub const MAX_STACK_BYTES: usize = 1 << 20;
/// The export the host calls to place the input: `(len: i32) -> ptr: i32`.
pub const ALLOC_EXPORT: &str = "datdot_alloc";
/// The module's linear memory.
pub const MEMORY_EXPORT: &str = "memory";

/// The engine configuration every party uses.
///
/// - Fuel metering on, with wasmi 2.0.0's default schedule (DESIGN §18.2): 1 fuel per
///   operator except `nop`, `drop`, `block`, `loop`, `unreachable`, `return`, `else`
///   and `end` (0), plus wasmi's per-byte costs for `memory.{grow,copy,fill,init}`.
/// - Eager compilation: lazy translation would charge fuel for translating a function
///   on its first use, so fuel would depend on what ran before in the same engine.
/// - No floats, no start function, custom sections ignored; WebAssembly 1.0 plus
///   mutable globals, sign extension, bulk memory and saturating float-to-int (a no-op
///   without floats). No multi-value: wasmi 2.0.0's translator trips a debug assertion
///   on a block parameter consumed by `local.set` (found by `fuzz/exec_module`; block
///   parameters need multi-value), and job modules need neither. No reference types,
///   tail calls, extended constants, multi-memory, memory64 or SIMD (the last two are
///   not compiled in).
/// - wasmi's strict parse limits ([`EnforcedLimits::strict`]), a 1024-deep call stack
///   and a 1 MiB value stack.
pub fn config() -> Config {
    let mut c = Config::default();
    c.consume_fuel(true)
        .compilation_mode(CompilationMode::Eager)
        .floats(false)
        .allow_start_fn(false)
        .ignore_custom_sections(true)
        .wasm_mutable_global(true)
        .wasm_sign_extension(true)
        .wasm_multi_value(false)
        .wasm_bulk_memory(true)
        .wasm_saturating_float_to_int(true)
        .wasm_multi_memory(false)
        .wasm_reference_types(false)
        .wasm_tail_call(false)
        .wasm_extended_const(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .enforced_limits(EnforcedLimits::strict())
        .set_max_recursion_depth(MAX_RECURSION_DEPTH)
        .set_max_stack_height(MAX_STACK_BYTES);
    c
}

/// Why a module (or an entry name) was refused. Refusal happens once, at upload (and
/// job submission for the entry); a module that passed never fails to load later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The binary is larger than [`MAX_MODULE_BYTES`].
    #[error("module of {got} bytes exceeds the limit of {max}", max = MAX_MODULE_BYTES)]
    TooLarge {
        /// The module's size.
        got: usize,
    },
    /// Not valid WebAssembly under [`config`] (floats, a start function, a feature
    /// that is off, a parse limit); the interpreter's reason.
    #[error("not a valid module: {0}")]
    Invalid(String),
    /// The module imports something: a job module has no host interface.
    #[error("the module imports {0}: job modules may not import anything")]
    Import(String),
    /// No exported memory named `memory`, or more than one memory.
    #[error("the module must export its one memory as `memory`")]
    Memory,
    /// The memory starts larger than [`MAX_MEMORY_PAGES`].
    #[error("the memory starts at {pages} pages; at most {max} are allowed", max = MAX_MEMORY_PAGES)]
    MemoryTooLarge {
        /// Its initial pages.
        pages: u64,
    },
    /// A table may hold more than [`MAX_TABLE_ELEMENTS`] (or there is more than one).
    #[error("tables: at most one of at most {max} elements", max = MAX_TABLE_ELEMENTS)]
    Table,
    /// `datdot_alloc` is missing or is not `(i32) -> i32`.
    #[error("the module must export `datdot_alloc: (i32) -> i32`")]
    Alloc,
    /// The entry name is empty, too long or not `[A-Za-z0-9_]`.
    #[error("entry names are 1 to {max} ASCII letters, digits or `_`", max = MAX_ENTRY_NAME)]
    EntryName,
    /// The entry is not exported as a function `(i32, i32) -> i64`.
    #[error("the module does not export `{0}: (i32, i32) -> i64`")]
    Entry(String),
    /// The module does not instantiate within the limits (a segment out of bounds, a
    /// table or memory over its limit).
    #[error("the module does not instantiate within the limits: {0}")]
    Instantiate(String),
}

/// What one call produced. `output` is empty unless `status` is
/// [`CallStatus::Ok`]; `fuel_used` is the whole cap when the call ran out of fuel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    /// How the call ended.
    pub status: CallStatus,
    /// Fuel consumed (placing the input, the entry, reading the output).
    pub fuel_used: u64,
    /// The output bytes.
    pub output: Vec<u8>,
    /// Why a trapped call trapped, for logs (not part of any record).
    pub trap: Option<Trap>,
}

/// Why a call trapped (informative; the record only says [`CallStatus::Trap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trap {
    /// The input is larger than [`MAX_INPUT_BYTES`] (the call is not started).
    InputTooLarge,
    /// Instantiation failed (a data or element segment out of bounds).
    Instantiate,
    /// `datdot_alloc` returned memory the input does not fit in.
    BadInputPointer,
    /// The entry returned an output range outside the memory.
    BadOutputPointer,
    /// The entry returned more than [`MAX_OUTPUT_BYTES`].
    OutputTooLarge,
    /// A WebAssembly trap (unreachable, out of bounds, division by zero, stack
    /// overflow, …).
    Wasm,
}

/// A validated, compiled module, ready for any number of calls.
pub struct Program {
    engine: Engine,
    module: Module,
}

impl core::fmt::Debug for Program {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Program").finish_non_exhaustive()
    }
}

/// `(i32) -> i32`, `(i32, i32) -> i64`.
fn is_type(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    ty.params() == params && ty.results() == results
}

impl Program {
    /// Validate and compile `wasm` under [`config`] and the module rules: no imports,
    /// one memory exported as `memory` starting at most [`MAX_MEMORY_PAGES`], at most
    /// one table of at most [`MAX_TABLE_ELEMENTS`], `datdot_alloc: (i32) -> i32`.
    pub fn new(wasm: &[u8]) -> Result<Self, ModuleError> {
        if wasm.len() > MAX_MODULE_BYTES {
            return Err(ModuleError::TooLarge { got: wasm.len() });
        }
        let engine = Engine::new(&config());
        let module = Module::new(&engine, wasm).map_err(|e| ModuleError::Invalid(e.to_string()))?;
        if let Some(import) = module.imports().next() {
            return Err(ModuleError::Import(alloc::format!(
                "{}::{}",
                import.module(),
                import.name()
            )));
        }
        let mut memories = 0;
        let mut tables = 0;
        let mut memory_ok = false;
        let mut alloc_ok = false;
        for export in module.exports() {
            match export.ty() {
                ExternType::Memory(m) => {
                    memories += 1;
                    if m.minimum() > u64::from(MAX_MEMORY_PAGES) {
                        return Err(ModuleError::MemoryTooLarge { pages: m.minimum() });
                    }
                    memory_ok |= export.name() == MEMORY_EXPORT;
                }
                ExternType::Func(f) if export.name() == ALLOC_EXPORT => {
                    alloc_ok = is_type(f, &[ValType::I32], &[ValType::I32]);
                }
                ExternType::Table(t) => {
                    tables += 1;
                    if t.minimum() > u64::from(MAX_TABLE_ELEMENTS) {
                        return Err(ModuleError::Table);
                    }
                }
                _ => {}
            }
        }
        // Memories and tables that are not exported count too: wasmi validated the
        // module with multi-memory off, so there is at most one memory, and it must be
        // the exported one.
        if memories != 1 || !memory_ok {
            return Err(ModuleError::Memory);
        }
        if tables > 1 {
            return Err(ModuleError::Table);
        }
        if !alloc_ok {
            return Err(ModuleError::Alloc);
        }
        let program = Program { engine, module };
        // Instantiation is the same for every call: a module that cannot be
        // instantiated within the limits is refused now rather than trapping always.
        let mut store = program.store(u64::MAX);
        Linker::<StoreLimits>::new(&program.engine)
            .instantiate_and_start(&mut store, &program.module)
            .map_err(|e| ModuleError::Instantiate(e.to_string()))?;
        Ok(program)
    }

    /// A store for one call: the memory and table limits, `fuel`.
    fn store(&self, fuel: u64) -> Store<StoreLimits> {
        let mut store = Store::new(&self.engine, store_limits());
        store.limiter(|l: &mut StoreLimits| l);
        // Fails only with metering off, which `config` never does.
        let _ = store.set_fuel(fuel);
        store
    }

    /// Check that `name` is a valid entry name exported as `(i32, i32) -> i64`.
    pub fn check_entry(&self, name: &str) -> Result<(), ModuleError> {
        check_entry_name(name)?;
        match self.module.get_export(name) {
            Some(ExternType::Func(f))
                if is_type(&f, &[ValType::I32, ValType::I32], &[ValType::I64]) =>
            {
                Ok(())
            }
            _ => Err(ModuleError::Entry(name.to_string())),
        }
    }

    /// Run `entry(input)` in a fresh instance with `fuel` (DESIGN §18.3): instantiate,
    /// `ptr = datdot_alloc(len)`, write the input at `ptr`, `r = entry(ptr, len)`,
    /// output = memory `[r >> 32 .. (r >> 32) + (r & 0xffff_ffff)]`. Never panics,
    /// whatever the module does; a call on an entry [`check_entry`](Self::check_entry)
    /// refuses traps.
    pub fn call(&self, entry: &str, input: &[u8], fuel: u64) -> CallOutcome {
        if input.len() > MAX_INPUT_BYTES {
            return trapped(0, Trap::InputTooLarge);
        }
        let mut store = self.store(fuel);
        let used = |store: &Store<StoreLimits>| fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let fail = |store: &Store<StoreLimits>, e: wasmi::Error, kind: Trap| {
            if e.as_trap_code() == Some(TrapCode::OutOfFuel) {
                out_of_fuel(fuel)
            } else {
                trapped(used(store), kind)
            }
        };
        let instance = match Linker::<StoreLimits>::new(&self.engine)
            .instantiate_and_start(&mut store, &self.module)
        {
            Ok(i) => i,
            Err(e) => return fail(&store, e, Trap::Instantiate),
        };
        let (Some(memory), Ok(alloc), Ok(entry)) = (
            instance.get_memory(&store, MEMORY_EXPORT),
            instance.get_typed_func::<i32, i32>(&store, ALLOC_EXPORT),
            instance.get_typed_func::<(i32, i32), i64>(&store, entry),
        ) else {
            return trapped(used(&store), Trap::Wasm);
        };
        // MAX_INPUT_BYTES fits an i32.
        let len = input.len() as i32;
        let ptr = match alloc.call(&mut store, len) {
            Ok(p) => p,
            Err(e) => return fail(&store, e, Trap::Wasm),
        };
        if memory
            .write(&mut store, ptr as u32 as usize, input)
            .is_err()
        {
            return trapped(used(&store), Trap::BadInputPointer);
        }
        let r = match entry.call(&mut store, (ptr, len)) {
            Ok(r) => r as u64,
            Err(e) => return fail(&store, e, Trap::Wasm),
        };
        let (out_ptr, out_len) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        if out_len > MAX_OUTPUT_BYTES {
            return trapped(used(&store), Trap::OutputTooLarge);
        }
        let Some(output) = memory
            .data(&store)
            .get(out_ptr..)
            .and_then(|d| d.get(..out_len))
        else {
            return trapped(used(&store), Trap::BadOutputPointer);
        };
        CallOutcome {
            status: CallStatus::Ok,
            fuel_used: used(&store),
            output: output.to_vec(),
            trap: None,
        }
    }
}

/// The limits of a call's store: [`MAX_MEMORY_PAGES`] of memory, one instance, one
/// memory, one table of at most [`MAX_TABLE_ELEMENTS`] (install with
/// `store.limiter(|l| l)`).
pub fn store_limits() -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(MAX_MEMORY_PAGES as usize * 65536)
        .table_elements(MAX_TABLE_ELEMENTS as usize)
        .instances(1)
        .memories(1)
        .tables(1)
        .build()
}

/// Entry names: 1 to [`MAX_ENTRY_NAME`] bytes of `[A-Za-z0-9_]`.
pub fn check_entry_name(name: &str) -> Result<(), ModuleError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ENTRY_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModuleError::EntryName)
    }
}

fn trapped(fuel_used: u64, kind: Trap) -> CallOutcome {
    CallOutcome {
        status: CallStatus::Trap,
        fuel_used,
        output: Vec::new(),
        trap: Some(kind),
    }
}

fn out_of_fuel(fuel: u64) -> CallOutcome {
    CallOutcome {
        status: CallStatus::OutOfFuel,
        fuel_used: fuel,
        output: Vec::new(),
        trap: None,
    }
}
