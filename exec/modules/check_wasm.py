#!/usr/bin/env python3
"""Check wasm job modules against datdot's module rules (the call ABI in datdot-modules'
crate docs), independently of the interpreter that enforces them: no imports, no start
function, no float types or instructions (every function body is decoded, opcode by
opcode), only WebAssembly 1.0 + mutable globals + sign extension + multi-value + bulk
memory, one memory of at most 16 initial pages, and the exports `memory`,
`datdot_alloc: (i32) -> i32` and `process: (i32, i32) -> i64`.

Usage: check_wasm.py FILE.wasm... (standard library only). Prints one summary line per
module; exits 1, after listing the problems, if any module breaks a rule.
"""

import sys

MAX_INITIAL_PAGES = 16
MAX_PAGES = 64
VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128",
            0x70: "funcref", 0x6F: "externref"}
FLOAT_TYPES = {0x7D, 0x7C}
SECTIONS = {1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}
EXPORT_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global"}
REQUIRED_EXPORTS = {"memory": (2, None), "datdot_alloc": (0, (("i32",), ("i32",))),
                    "process": (0, (("i32", "i32"), ("i64",)))}

# Single-byte opcodes by immediate kind (MVP + sign extension); 0xFC handled apart.
NO_IMM = set(range(0x45, 0xC5)) | {0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B}
BLOCK = {0x02, 0x03, 0x04}
INDEX = {0x0C, 0x0D, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24}
MEMARG = set(range(0x28, 0x3F))
FLOAT_OPS = ({0x2A, 0x2B, 0x38, 0x39, 0x43, 0x44} | set(range(0x5B, 0x67))
             | set(range(0x8B, 0xA7)) | set(range(0xA8, 0xAC)) | set(range(0xAE, 0xC0)))
# 0xFC sub-opcodes: 0-7 saturating float truncation (floats), 8-14 bulk memory.
FC_FLOAT = set(range(0, 8))
FC_IMMS = {8: "ib", 9: "i", 10: "bb", 11: "b", 12: "ii", 13: "i", 14: "ii"}


class Bad(Exception):
    pass


class Reader:
    def __init__(self, data, pos=0, end=None):
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def byte(self):
        if self.pos >= self.end:
            raise Bad(f"unexpected end at byte {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n):
        if self.pos + n > self.end:
            raise Bad(f"unexpected end at byte {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def leb(self, bits, signed=False):
        result = shift = 0
        for _ in range((bits + 6) // 7):
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b & 0x80 == 0:
                if signed and b & 0x40:
                    result -= 1 << shift
                return result
        raise Bad(f"LEB128 too long at byte {self.pos}")

    def u32(self):
        return self.leb(32)

    def name(self):
        return self.bytes(self.u32()).decode("utf-8")

    def done(self):
        return self.pos >= self.end


class Module:
    def __init__(self, data):
        self.problems = []
        self.types, self.funcs, self.exports, self.memories = [], [], [], []
        self.imported_funcs = []  # type indices; they come first in the function space
        self.custom, self.globals, self.tables = [], 0, 0
        self.instructions = 0
        self.parse(data)

    def bad(self, msg):
        self.problems.append(msg)

    def valtype(self, b, where):
        if b not in VALTYPES:
            raise Bad(f"unknown value type 0x{b:02x} in {where}")
        if b in FLOAT_TYPES:
            self.bad(f"float type {VALTYPES[b]} in {where}")
        elif b not in (0x7F, 0x7E, 0x70):
            self.bad(f"value type {VALTYPES[b]} (a later proposal) in {where}")
        return VALTYPES[b]

    def limits(self, r):
        flag = r.byte()
        if flag not in (0, 1):
            raise Bad(f"limits flag 0x{flag:02x} (shared/64-bit memory)")
        lo = r.u32()
        return lo, (r.u32() if flag == 1 else None)

    def parse(self, data):
        if data[:8] != b"\0asm\x01\0\0\0":
            raise Bad("not a WebAssembly 1 binary")
        r = Reader(data, 8)
        seen = set()
        while not r.done():
            sid, size = r.byte(), r.u32()
            s = Reader(data, r.pos, r.pos + size)
            r.pos += size
            if sid == 0:
                self.custom.append(s.name())
                continue
            if sid not in SECTIONS:
                raise Bad(f"unknown section id {sid}")
            if sid in seen:
                raise Bad(f"duplicate {SECTIONS[sid]} section")
            seen.add(sid)
            getattr(self, "sec_" + SECTIONS[sid])(s)
            if not s.done():
                raise Bad(f"{SECTIONS[sid]} section: {s.end - s.pos} trailing bytes")
        if len(self.memories) != 1:
            self.bad(f"{len(self.memories)} memories (exactly one is required)")

    def sec_type(self, s):
        for i in range(s.u32()):
            if s.byte() != 0x60:
                raise Bad(f"type {i}: not a function type")
            params = tuple(self.valtype(s.byte(), f"type {i}") for _ in range(s.u32()))
            results = tuple(self.valtype(s.byte(), f"type {i}") for _ in range(s.u32()))
            self.types.append((params, results))

    def sec_import(self, s):
        n = s.u32()
        if n:
            names = []
            for _ in range(n):
                names.append(f"{s.name()}.{s.name()}")
                kind = s.byte()
                if kind == 0:
                    self.imported_funcs.append(s.u32())
                elif kind == 2:
                    self.memories.append(self.limits(s))
                else:
                    {1: lambda: (s.byte(), self.limits(s)), 3: lambda: (s.byte(), s.byte())}[kind]()
            self.bad(f"{n} imports ({', '.join(names)}); none are allowed")

    def sec_function(self, s):
        self.funcs = [s.u32() for _ in range(s.u32())]

    def sec_table(self, s):
        for i in range(s.u32()):
            self.valtype(s.byte(), f"table {i}")
            self.limits(s)
            self.tables += 1

    def sec_memory(self, s):
        self.memories += [self.limits(s) for _ in range(s.u32())]
        for lo, hi in self.memories:
            if lo > MAX_INITIAL_PAGES:
                self.bad(f"initial memory {lo} pages > {MAX_INITIAL_PAGES}")
            if hi is not None and hi > MAX_PAGES:
                self.bad(f"maximum memory {hi} pages > {MAX_PAGES}")

    def sec_global(self, s):
        for i in range(s.u32()):
            self.valtype(s.byte(), f"global {i}")
            s.byte()  # mutability
            self.expr(s, f"global {i} initializer")
            self.globals += 1

    def sec_export(self, s):
        for _ in range(s.u32()):
            self.exports.append((s.name(), s.byte(), s.u32()))

    def sec_start(self, s):
        s.u32()
        self.bad("a start function; none is allowed")

    def sec_element(self, s):
        for i in range(s.u32()):
            flag, where = s.u32(), f"element segment {i}"
            if flag > 7:
                raise Bad(f"{where}: flag {flag}")
            if flag in (2, 6):
                s.u32()  # table index
            if flag & 1 == 0:
                self.expr(s, where)  # offset
            if flag & 3 in (1, 2, 3) and flag & 4 == 0:
                s.byte()  # element kind
            if flag & 3 in (1, 2, 3) and flag & 4:
                self.valtype(s.byte(), where)
            for _ in range(s.u32()):
                self.expr(s, where) if flag & 4 else s.u32()

    def sec_code(self, s):
        n = s.u32()
        if n != len(self.funcs):
            raise Bad(f"{n} bodies for {len(self.funcs)} functions")
        for i in range(n):
            size = s.u32()
            body = Reader(s.data, s.pos, s.pos + size)
            s.pos += size
            for _ in range(body.u32()):
                body.u32()
                self.valtype(body.byte(), f"locals of function {i}")
            self.expr(body, f"function {i}")
            if not body.done():
                raise Bad(f"function {i}: code after its final end")

    def sec_data(self, s):
        for i in range(s.u32()):
            flag = s.u32()
            if flag == 2:
                s.u32()
            if flag in (0, 2):
                self.expr(s, f"data segment {i}")
            elif flag != 1:
                raise Bad(f"data segment {i}: flag {flag}")
            s.bytes(s.u32())

    def sec_datacount(self, s):
        s.u32()

    def expr(self, r, where):
        """Decodes instructions up to the `end` that closes the expression."""
        depth = 0
        while True:
            at, op = r.pos, r.byte()
            self.instructions += 1
            if op in FLOAT_OPS:
                self.bad(f"float instruction 0x{op:02x} in {where} (byte {at})")
            if op in BLOCK:
                bt = r.leb(33, signed=True)
                if bt < 0 and bt != -64:  # a value type, encoded as a negative s33
                    self.valtype(bt & 0x7F, f"block type in {where}")
                depth += 1
            elif op == 0x0B:
                if depth == 0:
                    return
                depth -= 1
            elif op in INDEX:
                r.u32()
            elif op == 0x0E:  # br_table
                for _ in range(r.u32() + 1):
                    r.u32()
            elif op == 0x11:  # call_indirect
                r.u32()
                r.u32()
            elif op == 0x1C:  # typed select (reference types)
                for _ in range(r.u32()):
                    self.valtype(r.byte(), where)
                self.bad(f"typed select in {where} (byte {at})")
            elif op in MEMARG:
                r.u32()
                r.u32()
            elif op in (0x3F, 0x40):  # memory.size, memory.grow
                r.byte()
            elif op == 0x41:
                r.leb(32, signed=True)
            elif op == 0x42:
                r.leb(64, signed=True)
            elif op == 0x43:
                r.bytes(4)
            elif op == 0x44:
                r.bytes(8)
            elif op == 0xFC:
                sub = r.u32()
                if sub in FC_FLOAT:
                    self.bad(f"float instruction 0xfc {sub} in {where} (byte {at})")
                elif sub in FC_IMMS:
                    for imm in FC_IMMS[sub]:
                        r.u32() if imm == "i" else r.byte()
                else:
                    raise Bad(f"instruction 0xfc {sub} (a later proposal) in {where}")
            elif op not in NO_IMM:
                raise Bad(f"instruction 0x{op:02x} (unknown or a later proposal) in "
                          f"{where} (byte {at})")

    def check_exports(self):
        found = {}
        for name, kind, idx in self.exports:
            sig = None
            if kind == 0:
                space = self.imported_funcs + self.funcs
                if idx >= len(space):
                    raise Bad(f"export {name}: function {idx} out of range")
                sig = self.types[space[idx]]
            found[name] = (kind, sig)
        for name, want in REQUIRED_EXPORTS.items():
            if name not in found:
                self.bad(f"no `{name}` export")
            elif found[name] != want:
                self.bad(f"`{name}` export is {describe(*found[name])}, "
                         f"not {describe(*want)}")
        return found


def describe(kind, sig):
    if sig is None:
        return EXPORT_KINDS.get(kind, f"kind {kind}")
    params, results = sig
    return f"({', '.join(params)}) -> {', '.join(results) or '()'}"


def check(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        m = Module(data)
        exports = m.check_exports()
    except (Bad, UnicodeDecodeError, KeyError) as e:
        return [f"{path}: malformed: {e}"]
    lo, hi = m.memories[0] if m.memories else (None, None)
    print(f"{path}: {'ok' if not m.problems else 'FAILED'}: {len(data)} bytes, "
          f"{len(m.funcs)} functions, {m.instructions} instructions, "
          f"memory {lo} pages initial / {hi if hi is not None else 'no'} max, "
          f"{m.globals} globals, {m.tables} tables; exports: "
          + ", ".join(f"{n} {describe(*v)}" for n, v in exports.items())
          + (f"; custom sections: {', '.join(m.custom)}" if m.custom else ""))
    return [f"{path}: {p}" for p in m.problems]


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    problems = [p for path in paths for p in check(path)]
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
