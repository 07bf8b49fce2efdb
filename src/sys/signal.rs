//! The termination flag, set by the SIGTERM/SIGINT handlers that `signal-hook` installs.

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

/// Make `sig` set the termination flag. signal-hook installs its handler with SA_RESTART, so
/// ordinary blocking calls (file I/O during a commit, accept) do not fail with EINTR; poll(2)
/// and socket reads with a timeout are interrupted regardless, which is what inetd mode needs.
pub fn terminate_on(sig: libc::c_int) -> io::Result<()> {
    signal_hook::flag::register(sig, &TERMINATE).map(|_| ())
}
