//! Allocator tuning.

use std::sync::Once;

/// Serve every allocation of 128 KiB or more with its own mapping, for good. glibc otherwise
/// raises that threshold after the first big block is freed (up to 32 MiB), after which a
/// growing index vector is copied on every doubling and briefly held twice; mapped blocks grow
/// in place (`mremap`) and go back to the system when freed. Idempotent.
pub fn tune_allocator() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes malloc parameters under glibc's own lock; it takes no
        // pointers and is safe to call from any thread at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    });
}
