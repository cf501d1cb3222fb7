//! Execution bench: what a job call, a module compilation and the chain's re-run of one
//! disputed call cost, next to baselines measured in the same run. Four parts:
//! 1. **Per call** over 64 KiB blocks, for each example module (`grayscale`, `wordfreq`,
//!    `spin`): the native Rust function (`datdot_modules`), the same wasm in wasmi
//!    *without* fuel metering (an engine built from `vm::config()` with
//!    `consume_fuel(false)`), and `Program::call` with fuel (the real path). Both wasmi
//!    columns include instantiation: a fresh instance per call, as `Program::call` does.
//! 2. **Compilation**: `Program::new` per module (engine, validation, eager translation,
//!    the instantiation check), and for synthetic modules of the largest size accepted
//!    (128 KiB, generated with `wat`).
//! 3. **The chain's single-call re-execution at the cap** (`MaxFuelPerCall`): a real
//!    `CallFraudProof` over a `spin` call that uses just under the cap, judged end to end
//!    (decode from wire bytes, compile, both tree proofs, the record's signature, the
//!    re-run), next to that call alone.
//! 4. The machine, and the figures `chain/pallet/src/weights.rs` takes from this bench.
//!
//! Times are medians of N runs, N chosen so each measurement takes about SECS seconds.
//! The wasm modules come from `scripts/build-modules` (`$DATDOT_MODULES`, default
//! `target/modules`).
//!
//! Run: `cargo run --release --locked -p datdot-benches --bin exec -- [SECS=1]`
//! (about 20 s on 2 cores with the default: part 1's rows take 3 SECS, every other row SECS).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use datdot_exec::record::CallRecord;
use datdot_exec::vm::{self, ALLOC_EXPORT, MAX_MODULE_BYTES, MEMORY_EXPORT};
use datdot_exec::{CallFraudProof, CallStatus, CallVerdict, JobTerms, OutputBlock, Program};
use datdot_protocol::codec::to_bytes;
use datdot_protocol::identity::{Keypair, PublicKey};
use wasmi::{Engine, Linker, Module, Store, StoreLimits};

/// One input block.
const BLOCK: usize = 64 * 1024;
/// The runtime's `MaxFuelPerCall` (chain/runtime/src/lib.rs).
const CAP: u64 = 50_000_000;
/// `spin`'s rounds in part 1.
const SPIN_ROUNDS: u32 = 100_000;
/// The fuel of part 1's calls: far above `CAP`, so that every call completes (a row
/// whose call needs more than `CAP` is marked; on chain such a call runs out of fuel).
const UNCAPPED: u64 = 1 << 40;
const ENTRY: &str = "process";
const CHAIN: [u8; 32] = [3; 32];
const JOB: u64 = 7;
const MIN_RUNS: usize = 5;
const MAX_RUNS: usize = 1_000_000;

// ---------------------------------------------------------------------------------------
// Measurement

/// The median of `runs` timed runs.
#[derive(Clone, Copy)]
struct Stat {
    median: Duration,
    runs: usize,
}

impl Stat {
    fn us(self) -> f64 {
        self.median.as_secs_f64() * 1e6
    }
}

/// Times `f` about `budget` long in total (after a warm-up of a few runs that also sets
/// N) and returns the median run.
fn measure<T>(budget: Duration, mut f: impl FnMut() -> T) -> Stat {
    let start = Instant::now();
    let mut warm = 0u32;
    while warm < 3 || start.elapsed() < budget / 20 {
        black_box(f());
        warm += 1;
    }
    let each = start.elapsed().as_secs_f64() / f64::from(warm);
    let runs = ((budget.as_secs_f64() / each) as usize).clamp(MIN_RUNS, MAX_RUNS);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        black_box(f());
        times.push(t.elapsed());
    }
    times.sort_unstable();
    Stat {
        median: times[runs / 2],
        runs,
    }
}

// ---------------------------------------------------------------------------------------
// Inputs

/// SplitMix64: fixed-seed pseudo-random bytes, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let x = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `BLOCK` bytes of text: words of a small vocabulary, spaces, a newline every ~10 words.
fn text(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "feed",
        "block",
        "hoster",
        "attestor",
        "proof",
        "Merkle",
        "tree",
        "root",
        "signed",
        "chain",
        "job",
        "call",
        "fuel",
        "wasm",
        "module",
        "input",
        "output",
        "record",
        "fraud",
        "monitor",
        "executor",
        "stake",
        "report",
        "audit",
        "42",
        "2024",
        "Datdot",
        "Hypercore",
        "peer",
    ];
    let mut out = Vec::with_capacity(BLOCK + 16);
    while out.len() < BLOCK {
        let r = rng.next();
        out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
        out.push(if (r >> 32).is_multiple_of(10) {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(BLOCK);
    out
}

/// A `BLOCK`-byte `spin` input asking for `rounds`.
fn spin_input(rng: &mut Rng, rounds: u32) -> Vec<u8> {
    let mut v = rng.bytes(BLOCK);
    v[..4].copy_from_slice(&rounds.to_le_bytes());
    v
}

// ---------------------------------------------------------------------------------------
// The interpreter without fuel metering

/// The same module under `vm::config()` with metering off, called through the same ABI
/// as `Program::call` (fresh store, linker and instance per call; same limits).
struct Unmetered {
    engine: Engine,
    module: Module,
}

impl Unmetered {
    fn new(wasm: &[u8]) -> Result<Self> {
        let mut config = vm::config();
        config.consume_fuel(false);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wasm).context("unmetered compile")?;
        Ok(Unmetered { engine, module })
    }

    fn call(&self, entry: &str, input: &[u8]) -> Result<Vec<u8>> {
        let mut store = Store::new(&self.engine, vm::store_limits());
        store.limiter(|l: &mut StoreLimits| l);
        let instance = Linker::<StoreLimits>::new(&self.engine)
            .instantiate_and_start(&mut store, &self.module)?;
        let memory = instance
            .get_memory(&store, MEMORY_EXPORT)
            .context("no memory")?;
        let alloc = instance.get_typed_func::<i32, i32>(&store, ALLOC_EXPORT)?;
        let entry = instance.get_typed_func::<(i32, i32), i64>(&store, entry)?;
        let len = i32::try_from(input.len())?;
        let ptr = alloc.call(&mut store, len)?;
        memory.write(&mut store, ptr as u32 as usize, input)?;
        let r = entry.call(&mut store, (ptr, len))? as u64;
        let (at, n) = ((r >> 32) as usize, (r & 0xffff_ffff) as usize);
        memory
            .data(&store)
            .get(at..)
            .and_then(|d| d.get(..n))
            .map(<[u8]>::to_vec)
            .context("output out of bounds")
    }
}

// ---------------------------------------------------------------------------------------
// Modules

/// `<dir>/<name>.wasm`, `dir` being `$DATDOT_MODULES` or `<workspace>/target/modules`.
fn load(name: &str) -> Result<Vec<u8>> {
    let dir = std::env::var_os("DATDOT_MODULES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/modules"),
        PathBuf::from,
    );
    let path = dir.join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(b) => Ok(b),
        Err(e) => bail!(
            "cannot read {}: {e}\nbuild the example modules first with `scripts/build-modules` \
             (or point $DATDOT_MODULES at a directory holding grayscale.wasm, wordfreq.wasm, spin.wasm)",
            path.display()
        ),
    }
}

/// Shapes of the synthetic 128 KiB modules.
#[derive(Clone, Copy)]
enum Shape {
    /// Functions just over the smallest average size wasmi's strict limits allow (40
    /// bytes): the most functions in 128 KiB.
    Tiny,
    /// ~120-byte functions of straight-line integer ops on locals.
    Straight,
    /// ~250-byte functions of nested blocks, `br_table`, loads, stores, a loop, a call.
    Branchy,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Tiny => "synthetic: tiny functions",
            Shape::Straight => "synthetic: straight-line",
            Shape::Branchy => "synthetic: branchy",
        }
    }

    fn body(self, i: usize, count: usize, out: &mut String) {
        let c = i * 2_654_435_761 % 1_000_003;
        let reps = match self {
            Shape::Tiny => 2,
            Shape::Straight => 6,
            Shape::Branchy => 3,
        };
        for r in 0..reps {
            match self {
                Shape::Tiny | Shape::Straight => out.push_str(&format!(
                    " local.get 0 local.get 1 i32.add i32.const {} i32.xor local.tee 2 \
                     local.get 3 i32.mul i32.const 7 i32.rotl local.set 3",
                    c + r
                )),
                Shape::Branchy => out.push_str(&format!(
                    " block block block local.get 0 i32.const 7 i32.and \
                     br_table 0 1 2 0 1 2 0 1 2 end \
                     local.get 1 i32.load offset={} local.set 2 end \
                     local.get 3 local.get 2 i32.store offset={} end \
                     loop local.get 3 i32.const 1 i32.add local.tee 3 i32.const 3 i32.lt_u \
                     br_if 0 end \
                     local.get 1 i32.const 2147483647 i32.eq if \
                     local.get 0 local.get 1 call $f{} local.set 2 end",
                    16 + 4 * r,
                    64 + 4 * r,
                    (i + 1) % count
                )),
            }
        }
        out.push_str(" local.get 3 local.get 2 i32.add");
    }

    /// A valid job module with `count` functions of this shape (`process` calls the
    /// first, over the input's length).
    fn module(self, count: usize) -> Result<Vec<u8>> {
        let mut w = String::from(
            r#"(module
  (memory (export "memory") 1 64)
  (global $next (mut i32) (i32.const 1024))
  (func (export "datdot_alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  (func (export "process") (param $ptr i32) (param $len i32) (result i64)
    (drop (call $f0 (i32.const 0) (i32.const 0)))
    (i64.const 0))
"#,
        );
        for i in 0..count {
            w.push_str(&format!(
                "  (func $f{i} (param i32 i32) (result i32) (local i32 i32)"
            ));
            self.body(i, count, &mut w);
            w.push_str(")\n");
        }
        w.push(')');
        Ok(wat::parse_str(&w)?)
    }

    /// The largest module of this shape accepted (at most `MAX_MODULE_BYTES`).
    fn largest(self) -> Result<Vec<u8>> {
        let (a, b) = (self.module(100)?.len(), self.module(200)?.len());
        let per = (b - a).div_ceil(100);
        let mut count = 100 + (MAX_MODULE_BYTES.saturating_sub(a)) / per;
        loop {
            let m = self.module(count)?;
            if m.len() <= MAX_MODULE_BYTES {
                return Ok(m);
            }
            count -= 1 + (m.len() - MAX_MODULE_BYTES) / per;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The fraud-proof fixture (datdot-testkit's signed feeds, as in exec/tests/fraud.rs)

use datdot_testkit::SignedFeed as Feed;

/// What the chain knows of the job, apart from its compiled module.
struct Job {
    input_feed: PublicKey,
    input_length: u64,
    input_tree: [u8; 32],
    output_feed: PublicKey,
    executor: PublicKey,
}

impl Job {
    fn terms<'a>(&'a self, program: &'a Program) -> JobTerms<'a> {
        JobTerms {
            chain: CHAIN,
            job: JOB,
            program,
            entry: ENTRY,
            fuel_per_call: CAP,
            input_feed: &self.input_feed,
            input_length: self.input_length,
            input_tree: self.input_tree,
            output_feed: &self.output_feed,
            executor: &self.executor,
        }
    }
}

/// The `spin` rounds whose call over a `BLOCK`-byte input uses the most fuel below
/// `CAP` (fuel is affine in the rounds for a given input length).
fn rounds_at_cap(program: &Program, rng: &mut Rng) -> Result<u32> {
    let fuel = |rounds: u32, rng: &mut Rng| -> Result<u64> {
        let o = program.call(ENTRY, &spin_input(rng, rounds), CAP);
        ensure!(
            o.status == CallStatus::Ok,
            "spin({rounds}) ended {:?}",
            o.status
        );
        Ok(o.fuel_used)
    };
    let (f0, f1) = (fuel(0, rng)?, fuel(10_000, rng)?);
    let per = (f1 - f0) as f64 / 10_000.0;
    let mut rounds = ((CAP - 1 - f0) as f64 / per) as u32;
    loop {
        let o = program.call(ENTRY, &spin_input(rng, rounds), CAP);
        if o.status == CallStatus::Ok && o.fuel_used < CAP {
            return Ok(rounds);
        }
        rounds -= 1;
    }
}

// ---------------------------------------------------------------------------------------

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<()> {
    let started = Instant::now();
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("usage: exec [SECS per measurement]")?
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let mut rng = Rng(0x00da_7d07);

    // 1. Per call.
    type Native = fn(&[u8]) -> Vec<u8>;
    let jobs: [(&str, Native, Vec<u8>); 3] = [
        ("grayscale", datdot_modules::grayscale, rng.bytes(BLOCK)),
        ("wordfreq", datdot_modules::word_frequency, text(&mut rng)),
        (
            "spin",
            datdot_modules::spin,
            spin_input(&mut rng, SPIN_ROUNDS),
        ),
    ];
    // Fail before printing anything if the modules are not built.
    let wasms = jobs
        .iter()
        .map(|(name, ..)| load(name))
        .collect::<Result<Vec<_>>>()?;
    let mut modules = Vec::new();
    println!(
        "## 1. One call over a 64 KiB block (median of N; both wasmi columns include \
         instantiation: a fresh instance per call, as Program::call does, plus placing the \
         input and copying the output)\n"
    );
    println!(
        "| module | input KiB | native µs | wasmi µs | wasmi+fuel µs | wasmi/native | \
         fuel/no-fuel | fuel used | ns per fuel | runs (native/wasmi/fuel) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut worst_ns_per_fuel = (0.0f64, "");
    for ((name, native, input), wasm) in jobs.iter().zip(wasms) {
        let program = Program::new(&wasm).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        program
            .check_entry(ENTRY)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let unmetered = Unmetered::new(&wasm)?;
        // The three paths compute the same thing.
        let expected = native(input);
        let outcome = program.call(ENTRY, input, UNCAPPED);
        ensure!(
            outcome.status == CallStatus::Ok && outcome.output == expected,
            "{name}: metered call differs from native ({:?})",
            outcome.status
        );
        ensure!(
            unmetered.call(ENTRY, input)? == expected,
            "{name}: unmetered call differs from native"
        );
        let n = measure(budget, || native(black_box(input)));
        let w = measure(budget, || unmetered.call(ENTRY, black_box(input)));
        let f = measure(budget, || program.call(ENTRY, black_box(input), UNCAPPED));
        let ns_per_fuel = f.us() * 1e3 / outcome.fuel_used as f64;
        if ns_per_fuel > worst_ns_per_fuel.0 {
            worst_ns_per_fuel = (ns_per_fuel, name);
        }
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1}x | {:.2}x | {}{} | {:.2} | {}/{}/{} |",
            input.len() / 1024,
            n.us(),
            w.us(),
            f.us(),
            w.us() / n.us(),
            f.us() / w.us(),
            outcome.fuel_used,
            if outcome.fuel_used > CAP {
                " (over the cap)"
            } else {
                ""
            },
            ns_per_fuel,
            n.runs,
            w.runs,
            f.runs
        );
        modules.push((*name, wasm));
    }

    // 2. Compilation.
    println!(
        "\n## 2. Program::new (engine + validation + eager translation + the instantiation \
         check; the chain compiles on upload, on submit_job and on every call proof)\n"
    );
    println!("| module | bytes | KiB | Program::new µs | µs per KiB | runs |");
    println!("|---|---|---|---|---|---|");
    let mut synthetic = Vec::new();
    for shape in [Shape::Tiny, Shape::Straight, Shape::Branchy] {
        let wasm = shape.largest()?;
        let program = Program::new(&wasm).map_err(|e| anyhow::anyhow!("{}: {e}", shape.name()))?;
        let o = program.call(ENTRY, &[0; 16], CAP);
        ensure!(o.status == CallStatus::Ok, "{}: {:?}", shape.name(), o);
        synthetic.push((shape.name(), wasm));
    }
    let mut worst_compile = (0.0f64, "");
    let mut worst_example = (0.0f64, "");
    let mut spin_compile = None;
    let mut fixed = f64::MAX;
    let mut marginal = 0.0f64;
    for (i, (name, wasm)) in modules.iter().chain(&synthetic).enumerate() {
        let s = measure(budget, || Program::new(black_box(wasm)));
        let kib = wasm.len() as f64 / 1024.0;
        let per = s.us() / kib;
        if per > worst_compile.0 {
            worst_compile = (per, name);
        }
        if i < modules.len() && per > worst_example.0 {
            worst_example = (per, name);
        }
        if *name == "spin" {
            spin_compile = Some(s);
        }
        if i < modules.len() {
            fixed = fixed.min(s.us());
        } else {
            marginal = marginal.max((s.us() - fixed) / kib);
        }
        println!(
            "| {name} | {} | {kib:.1} | {:.1} | {per:.1} | {} |",
            wasm.len(),
            s.us(),
            s.runs
        );
    }

    // 3. The chain's re-execution of one call at the cap.
    let spin_wasm = &modules[2].1;
    let spin = Program::new(spin_wasm).map_err(|e| anyhow::anyhow!("spin: {e}"))?;
    let rounds = rounds_at_cap(&spin, &mut rng)?;
    let blocks: Vec<Vec<u8>> = (0..4u32)
        .map(|i| {
            let r = if i == 2 { rounds } else { 1000 * (i + 1) };
            spin_input(&mut rng, r)
        })
        .collect();
    let input_feed = Feed::new(1, blocks);
    let executor = Keypair::from_seed(&[9; 32]);
    let records: Vec<Vec<u8>> = input_feed
        .blocks
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let o = spin.call(ENTRY, input, CAP);
            let record = CallRecord::of(CHAIN, JOB, i as u64, input, &o, executor.public());
            to_bytes(&OutputBlock::sign(record, o.output, &executor))
        })
        .collect();
    let output_feed = Feed::new(2, records);
    let proof = CallFraudProof {
        input: input_feed.blocks[2].clone(),
        input_proof: input_feed.proof(2),
        output: output_feed.blocks[2].clone(),
        output_proof: output_feed.proof(2),
    };
    let wire = to_bytes(&proof);
    let job = Job {
        input_feed: input_feed.public(),
        input_length: input_feed.blocks.len() as u64,
        input_tree: input_feed.tree_hash(),
        output_feed: output_feed.public(),
        executor: executor.public(),
    };
    let end_to_end = || -> Result<u64> {
        let p = CallFraudProof::from_wire(black_box(&wire))
            .map_err(|e| anyhow::anyhow!("decode: {e}"))?;
        let program = Program::new(spin_wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (verdict, outcome) = p
            .verify(&job.terms(&program))
            .map_err(|e| anyhow::anyhow!("verify: {e}"))?;
        ensure!(verdict == CallVerdict::NoFraud { index: 2 }, "{verdict:?}");
        Ok(outcome.fuel_used)
    };
    let fuel = end_to_end()?;
    ensure!(
        fuel < CAP && fuel > CAP - 1000,
        "fuel {fuel} not just under the cap"
    );
    let cap_input = &input_feed.blocks[2];
    let call = measure(budget, || spin.call(ENTRY, black_box(cap_input), CAP));
    let e2e = measure(budget, || end_to_end().expect("checked above"));
    let decode = measure(budget, || {
        CallFraudProof::from_wire(black_box(&wire)).expect("checked above")
    });
    let precompiled = measure(budget, || {
        proof.verify(&job.terms(&spin)).expect("checked above")
    });
    let native_cap = measure(budget, || datdot_modules::spin(black_box(cap_input)));
    println!(
        "\n## 3. The chain's re-run of one call at MaxFuelPerCall = {CAP}: spin, {rounds} rounds \
         over a 64 KiB block; a real CallFraudProof of {} wire bytes (input feed of 4 blocks, \
         output feed of the honest OutputBlocks, both roots signed), verdict NoFraud\n",
        wire.len()
    );
    println!("| what | fuel used | µs | ps per fuel | runs |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, fuel: Option<u64>, s: Stat| {
        let (f, ps) = match fuel {
            Some(f) => (f.to_string(), format!("{:.0}", s.us() * 1e6 / f as f64)),
            None => ("-".into(), "-".into()),
        };
        println!("| {what} | {f} | {:.0} | {ps} | {} |", s.us(), s.runs);
    };
    row(
        "CallFraudProof: from_wire + Program::new + verify (end to end)",
        Some(fuel),
        e2e,
    );
    row(
        "CallFraudProof::verify, program compiled beforehand",
        Some(fuel),
        precompiled,
    );
    row("Program::call alone (the re-run)", Some(fuel), call);
    row("CallFraudProof::from_wire alone", None, decode);
    if let Some(s) = spin_compile {
        row("Program::new(spin) alone (from part 2)", None, s);
    }
    row(
        "baseline: native datdot_modules::spin, same input",
        None,
        native_cap,
    );

    // 4. Footer.
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let call_ps = call.us() * 1e6 / fuel as f64;
    let e2e_ps = e2e.us() * 1e6 / fuel as f64;
    println!("\n## Machine and the figures for chain/pallet/src/weights.rs\n");
    println!(
        "- machine: nproc = {nproc}, CPU: {} (shared with other work while measured)",
        cpu_model()
    );
    println!(
        "- NATIVE_PS_PER_FUEL (weights.rs, rounded up from this): spin at the cap {call_ps:.0} ps/fuel for the call \
         alone, {e2e_ps:.0} ps/fuel end to end (decode + compile + proofs + signature + re-run); \
         worst module in part 1: {} at {:.0} ps/fuel (64 KiB block, instantiation included)",
        worst_ns_per_fuel.1,
        worst_ns_per_fuel.0 * 1e3
    );
    println!(
        "- NATIVE_COMPILE_US_PER_KIB (weights.rs, rounded up from this): worst example module {} at {:.1} µs/KiB; \
         worst of all measured (incl. synthetic 128 KiB) {} at {:.1} µs/KiB",
        worst_example.1, worst_example.0, worst_compile.1, worst_compile.0
    );
    println!(
        "  (as a line: a fixed ~{fixed:.0} µs, the smallest module's time, mostly the engine, \
         plus at most {marginal:.1} µs per KiB over the synthetic 128 KiB modules)"
    );
    println!("\nbench took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
