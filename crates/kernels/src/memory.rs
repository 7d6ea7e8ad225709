//! Process-wide allocator tuning for CPU training.
//!
//! A training step allocates and frees many tensors of several MB. glibc's malloc hands
//! big blocks back to the kernel on free (mmap'd chunks, heap trimming), so every step
//! pays for fresh pages again: on the 2-core dev VM a new 16 MB tensor costs ~7 ms of
//! page faults against ~0.3 ms to fill warm memory, which made candle's elementwise
//! backward ops 3-5x slower than their arithmetic.

/// Tells glibc's malloc to keep freed memory for reuse: no mmap'd chunks, no trimming.
/// Call once at program start, before training. Returns whether the setting took effect
/// (false on platforms without glibc, where it does nothing).
///
/// The process's resident memory then stays near its peak instead of shrinking between
/// steps, which is the point for training loops.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        glibc::retain_freed_memory()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    // Parameter numbers from glibc's <malloc.h>.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_MAX: c_int = -4;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub(super) fn retain_freed_memory() -> bool {
        // SAFETY: mallopt only changes malloc's tuning parameters; both values are in
        // the documented ranges (mallopt returns 1 on success, 0 on error).
        unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, c_int::MAX) == 1 }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::retain_freed_memory());
    }
}
