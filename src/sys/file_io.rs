//! Hints to the kernel about how a file will be read.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Tell the kernel that `file` is about to be read once from start to end, so it reads ahead
/// further (a cold first login reads the whole mailbox). Only a hint: errors are ignored.
pub fn advise_sequential(file: &File) {
    #[cfg(target_os = "linux")]
    // SAFETY: posix_fadvise takes a descriptor owned by `file` (valid for the call) and plain
    // integers; it reads or writes no memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
    }
}
