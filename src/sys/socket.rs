//! Listening socket tuning std does not expose.

use std::io;
use std::net::TcpListener;
use std::os::unix::io::AsRawFd;

/// Raise the accept queue of a listening socket to `backlog` (std listens with 128; the
/// kernel caps the value at `net.core.somaxconn`). Calling listen(2) again on a listening
/// socket only changes its backlog. With a short queue, a burst of connections overflows it
/// and the kernel answers with SYN cookies: a client that then waits for the greeting may
/// never see the connection completed on our side.
pub fn raise_backlog(listener: &TcpListener, backlog: i32) -> io::Result<()> {
    // SAFETY: the descriptor is a valid, bound, listening socket owned by `listener` for the
    // duration of the call; listen takes no pointers.
    let r = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
