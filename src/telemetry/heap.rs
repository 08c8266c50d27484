//! What the C allocator holds (glibc malloc, under Rust's default allocator on Linux): bytes
//! handed out to the program and bytes freed but kept in its arenas. Exported on /metrics so
//! a long run tells a leak (allocated keeps growing) from fragmentation or arena retention
//! (allocated flat, the free bytes held — and so RSS — growing); `bench/soak.py` reads them.

/// One reading of the allocator's books, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// In use by the program: arena chunks plus large blocks mmapped on their own.
    pub allocated: u64,
    /// Freed by the program, still held by the allocator in its arenas.
    pub free_held: u64,
}

/// The allocator's books now; `None` where the C library is not glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_stats() -> Option<HeapStats> {
    // SAFETY: mallinfo2 takes no arguments, only reads the allocator's own counters (under
    // its arena locks) and returns a plain struct by value; glibc ≥ 2.33 has it.
    let info = unsafe { libc::mallinfo2() };
    Some(HeapStats {
        allocated: (info.uordblks + info.hblkhd) as u64,
        free_held: info.fordblks as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_stats() -> Option<HeapStats> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn a_held_allocation_shows_as_allocated() {
        let before = heap_stats().expect("glibc").allocated;
        // Large next to what other tests running beside this one allocate and free.
        let block = std::hint::black_box(vec![1u8; 256 << 20]);
        let during = heap_stats().expect("glibc").allocated;
        assert!(during >= before + (200 << 20), "{before} → {during}");
        drop(block);
        let after = heap_stats().expect("glibc").allocated;
        assert!(after + (200 << 20) <= during, "{during} → {after}");
    }
}
