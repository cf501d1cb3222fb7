//! The glue every datdot job module shares (wasm32 only): the call ABI described in
//! `datdot-modules`' crate docs, around one `fn(&[u8]) -> Vec<u8>`.
//!
//! - A bump allocator as the global allocator: it starts at `__heap_base` (after the
//!   data and the 64 KiB stack), never frees (every call is a fresh instance) and grows
//!   the memory a page at a time; `memory.grow` failing (beyond the host's 4 MiB, which
//!   the modules also declare as their maximum) makes the allocation fail, which traps.
//! - [`job!`] defines the two exports, `datdot_alloc` and `process`.
//! - A panic handler that traps (`unreachable`), so no panic message is formatted and
//!   none of `core::fmt` is linked in.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;
use core::mem::ManuallyDrop;

const PAGE: usize = 65536;

unsafe extern "C" {
    /// The first byte after the data segments and the stack (defined by wasm-ld).
    static __heap_base: u8;
}

/// The global allocator: a bump pointer into linear memory.
struct Bump {
    /// The first free byte; 0 before the first allocation.
    next: Cell<usize>,
}

// SAFETY: wasm32v1-none has no threads; the cell is never shared between threads.
unsafe impl Sync for Bump {}

#[global_allocator]
static HEAP: Bump = Bump { next: Cell::new(0) };

impl Bump {
    fn next(&self) -> usize {
        match self.next.get() {
            0 => &raw const __heap_base as usize,
            next => next,
        }
    }

    /// Makes `start..end` usable (growing the memory if needed) and the next free byte
    /// `end`; `None` when the memory cannot grow that far.
    fn claim(&self, start: usize, end: usize) -> Option<usize> {
        let have = wasm32::memory_size(0).saturating_mul(PAGE);
        if end > have && wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) == usize::MAX {
            return None;
        }
        self.next.set(end);
        Some(start)
    }

    fn bump(&self, layout: Layout) -> Option<usize> {
        // Alignments are powers of two.
        let start = self.next().checked_add(layout.align() - 1)? & !(layout.align() - 1);
        self.claim(start, start.checked_add(layout.size())?)
    }
}

fn to_ptr(addr: Option<usize>) -> *mut u8 {
    addr.map_or(core::ptr::null_mut(), |a| a as *mut u8)
}

// SAFETY: blocks never overlap (the pointer only moves forward, over memory that exists)
// and are aligned as asked.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        to_ptr(self.bump(layout))
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == self.next() {
            // The last block (a growing output, say) grows or shrinks in place.
            return to_ptr(
                start
                    .checked_add(new_size)
                    .and_then(|end| self.claim(start, end)),
            );
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's
        // contract); the blocks are distinct and each at least `min(..)` bytes long.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    wasm32::unreachable()
}

/// `datdot_alloc(len)`: `len` writable bytes (for the input), or a trap.
pub fn alloc_input(len: u32) -> u32 {
    // `len as usize`, `addr as u32`: wasm32 pointers are 32 bits.
    match Layout::from_size_align(len as usize, 8)
        .ok()
        .and_then(|l| HEAP.bump(l))
    {
        Some(addr) => addr as u32,
        None => wasm32::unreachable(),
    }
}

/// `process(ptr, len)`: runs `job` on the input at `ptr..ptr+len` and returns
/// `(out_ptr << 32) | out_len`; the output is never freed (the instance is discarded).
///
/// # Safety
/// `ptr..ptr+len` is memory of this instance that nothing else refers to (the host
/// wrote the input into a block from `datdot_alloc(len)`).
pub unsafe fn process(ptr: u32, len: u32, job: fn(&[u8]) -> Vec<u8>) -> u64 {
    let input: &[u8] = match len {
        0 => &[],
        // SAFETY: the caller's contract.
        _ => unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) },
    };
    let out = ManuallyDrop::new(job(input));
    ((out.as_ptr() as usize as u64) << 32) | out.len() as u64
}

/// Defines the exports of a job module running `$job: fn(&[u8]) -> Vec<u8>`:
/// `datdot_alloc: (i32) -> i32` and `process: (i32, i32) -> i64`.
#[macro_export]
macro_rules! job {
    ($job:path) => {
        /// The call ABI's `datdot_alloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn datdot_alloc(len: u32) -> u32 {
            $crate::alloc_input(len)
        }

        /// The call ABI's `process`.
        #[unsafe(no_mangle)]
        pub extern "C" fn process(ptr: u32, len: u32) -> u64 {
            // SAFETY: the host calls `process` once, on the block `datdot_alloc` gave
            // it, holding the input it wrote there.
            unsafe { $crate::process(ptr, len, $job) }
        }
    };
}
