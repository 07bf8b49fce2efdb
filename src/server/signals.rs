//! SIGTERM/SIGINT (stop) and SIGHUP (reload).
//!
//! The handlers only set flags and write one byte to a self-pipe (both async-signal-safe); the
//! daemon's main thread blocks reading the other end and does the real work in normal context.
//! Sessions poll [`terminating`] between commands; the listener also shuts their sockets down
//! so that reads blocked in the kernel return at once.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static TERMINATE: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
/// Write end of the self-pipe, or -1 before [`install`].
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What the main loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Terminate,
    Reload,
}

/// Whether SIGTERM or SIGINT arrived.
pub fn terminating() -> bool {
    TERMINATE.load(Ordering::SeqCst)
}

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
            if TERMINATE.load(Ordering::SeqCst) {
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
        set_handler(sig)?;
    }
    debug_assert!(rx.as_raw_fd() >= 0);
    Ok(Signals { rx })
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        TERMINATE.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. errno is
        // saved and restored so the interrupted code does not see our EAGAIN.
        unsafe {
            let errno = libc::__errno_location();
            let saved = *errno;
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *errno = saved;
        }
    }
}

fn set_handler(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: `action` is fully initialised (zeroed, then the fields sigaction reads are set)
    // and `on_signal` only touches atomics and calls write(2). SA_RESTART keeps ordinary
    // blocking calls (file I/O during a commit, accept) from failing with EINTR; poll(2) and
    // socket reads with a timeout are interrupted regardless, which is what inetd mode needs.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
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
        // SAFETY: raise(3) on our own process; the handler above is installed.
        unsafe { libc::raise(libc::SIGHUP) };
        assert_eq!(t.join().expect("join").expect("wait"), Event::Reload);
        assert!(!terminating());
    }
}
