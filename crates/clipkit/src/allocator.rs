//! Process-wide memory allocator settings for programs built on clipkit.

/// Makes the C allocator keep freed memory for reuse instead of returning it to the OS.
///
/// A forward pass allocates activation buffers of several MiB per layer. By default glibc
/// serves such sizes with fresh `mmap`s and unmaps them when freed, so every layer takes page
/// faults and has the kernel zero its pages again (10–20% of a batch-32 forward pass on 2
/// cores). With this call, blocks up to 32 MiB come from the heap and the heap is not trimmed,
/// so buffers are recycled. Call it once at program start; a no-op off glibc. Libraries
/// embedding clipkit decide for themselves; the `clipkit` binary calls it.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's ceiling for the mmap threshold on 64-bit targets.
        const MMAP_THRESHOLD: libc::c_int = 32 * 1024 * 1024;
        const TRIM_THRESHOLD: libc::c_int = 1024 * 1024 * 1024;
        // SAFETY: mallopt only changes allocator parameters; both values are within range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
