//! fcntl(2) record locks over a whole file, and the liveness check for dot-lock owners.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// Set (`Some(write)`) or clear (`None`) a non-blocking lock over `[0, ∞)` of `file`.
pub fn set_whole_file_lock(file: &File, lock: Option<bool>) -> io::Result<()> {
    let l_type = match lock {
        Some(true) => libc::F_WRLCK,
        Some(false) => libc::F_RDLCK,
        None => libc::F_UNLCK,
    };
    // l_start = 0 with l_len = 0 covers the whole file and any bytes appended later; l_pid
    // must be 0 for OFD locks.
    let fl = libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    #[cfg(target_os = "linux")]
    {
        match fcntl_lock(file, libc::F_OFD_SETLK, &fl) {
            // Kernels before 3.15 do not know OFD locks: fall back to process locks.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return other,
        }
    }
    fcntl_lock(file, libc::F_SETLK, &fl)
}

fn fcntl_lock(file: &File, cmd: libc::c_int, fl: &libc::flock) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the lifetime of `file`, `cmd` is a lock command
    // that reads exactly one `struct flock`, and `fl` points to a fully initialised one that
    // outlives the call. The kernel does not retain the pointer.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *const libc::flock) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether `pid` names a live process on this host (EPERM: alive, but not ours).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only performs the existence and permission checks; it
    // sends nothing and touches no memory.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
