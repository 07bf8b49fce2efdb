//! SIGTERM/SIGINT (stop) and SIGHUP (reload).
//!
//! The handlers only set flags and write one byte to a self-pipe (both async-signal-safe); the
//! daemon's main thread blocks reading the other end and does the real work in normal context.
//! Sessions poll [`terminating`] between commands; the listener also shuts their sockets down
//! so that reads blocked in the kernel return at once.

use std::io::{self, Read};

use crate::sys::signal;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static RELOAD: AtomicBool = AtomicBool::new(false);
/// Write end of the self-pipe, or -1 before [`install`].
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What the main loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Terminate,
    Reload,
}

pub use crate::sys::signal::terminating;

/// The receiving end of the self-pipe.
#[derive(Debug)]
pub struct Signals {
    rx: UnixStream,
}

impl Signals {
    /// Block until a signal is pending; termination wins over a reload.
    pub fn wait(&mut self) -> io::Result<Event> {
        let mut byte = [0u8; 1];
        loop {
            if terminating() {
                return Ok(Event::Terminate);
            }
            if RELOAD.swap(false, Ordering::SeqCst) {
                return Ok(Event::Reload);
            }
            match self.rx.read(&mut byte) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "signal pipe closed",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Install the handlers for SIGTERM, SIGINT and SIGHUP (SIGHUP would otherwise kill an inetd
/// session when the terminal of whoever started it goes away). Call once, before threads start.
pub fn install() -> io::Result<Signals> {
    let (rx, tx) = UnixStream::pair()?;
    // A full pipe must never block the handler; a dropped byte is harmless because the flags
    // carry the information and one byte is already waiting.
    tx.set_nonblocking(true)?;
    // The write end lives as long as the process: the handler may run at any time.
    WAKE_FD.store(tx.into_raw_fd(), Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal::set_handler(sig, on_signal)?;
    }
    debug_assert!(rx.as_raw_fd() >= 0);
    Ok(Signals { rx })
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        signal::request_termination();
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        signal::write_byte_from_handler(fd, sig as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SIGTERM is covered by the integration tests: the flag cannot be cleared again and would
    // leak into other unit tests of this process.
    #[test]
    fn hup_reaches_the_waiter_from_another_thread() {
        let mut signals = install().expect("install");
        let t = std::thread::spawn(move || signals.wait());
        std::thread::sleep(std::time::Duration::from_millis(30));
        signal::raise(libc::SIGHUP).expect("raise");
        assert_eq!(t.join().expect("join").expect("wait"), Event::Reload);
        assert!(!terminating());
    }
}
