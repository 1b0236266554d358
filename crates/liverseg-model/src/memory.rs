//! How the process's allocator treats the network's large buffers.

/// Keep freed memory in the process instead of returning it to the system
/// at once. Call it at the start of a program that runs the network (the
/// `segment`, `demo` and `train` commands), before any thread starts; not in
/// long-running servers, which should give memory back between jobs.
///
/// Why: every layer's activations and gradients are fresh buffers of tens of
/// MB, freed a moment later. glibc's malloc hands such memory back to the
/// system on free (trimming the heap when its free top exceeds a threshold
/// of a few MB) and maps the largest ones separately, unmapping them on
/// free, so the next buffer faults in and zeroes new pages: in a `perf`
/// profile of the `fast` training step, page zeroing and faults were about a
/// tenth of the time. With trimming off and a 256 MB top pad the `network`
/// bench (both presets) counted 1.57 M page faults; with no separate
/// mappings as well, 0.34 M, and the paper training step went from 9.6-10.1 s
/// to 7.0 s (2 threads, 2026-12-03, the direct convolution in both; model
/// README). Freed memory is reused, not given back until the process ends,
/// which for these commands is soon after their peak anyway.
///
/// Only glibc has these knobs; elsewhere (musl's static build, macOS) this
/// does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of malloc's tuning parameters; it is
    // thread-safe in glibc and takes plain integers.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        // Buffers above the mmap threshold (128 KiB once the trim threshold
        // is set, 32 MiB at most) would still be mapped and unmapped one
        // by one: serve them from the heap too.
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
