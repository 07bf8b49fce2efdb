//! sigaction(2) and the one system call a signal handler makes.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set (from a signal handler) once SIGTERM or SIGINT arrived. It lives here, below every
/// layer, because both the daemon's driver and the byte streams that wait on pipes check it.
static TERMINATE: AtomicBool = AtomicBool::new(false);

/// Whether SIGTERM or SIGINT arrived.
pub fn terminating() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

/// Record a termination request; async-signal-safe (one atomic store).
pub fn request_termination() {
    TERMINATE.store(true, Ordering::SeqCst);
}

/// Install `handler` for `sig` with SA_RESTART, so ordinary blocking calls (file I/O during a
/// commit, accept) do not fail with EINTR; poll(2) and socket reads with a timeout are
/// interrupted regardless, which is what inetd mode needs.
pub fn set_handler(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: `action` is fully initialised (zeroed, then the fields sigaction reads are set);
    // the caller's handler must be async-signal-safe (ours touches atomics and calls
    // `write_byte_from_handler`).
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// write(2) one byte from inside a signal handler (a self-pipe wake-up), leaving errno as the
/// interrupted code had it.
pub fn write_byte_from_handler(fd: libc::c_int, byte: u8) {
    // SAFETY: write(2) is async-signal-safe and reads one byte from a live local; errno is
    // saved and restored so the interrupted code does not see our EAGAIN.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// Send `sig` to this process (tests of the handlers).
pub fn raise(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: raise(3) takes a plain signal number and touches no memory of ours.
    if unsafe { libc::raise(sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
