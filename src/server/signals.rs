//! SIGTERM/SIGINT (stop) and SIGHUP (reload).
//!
//! `signal-hook` installs the handlers: they set the termination flag and wake a self-pipe
//! that the daemon's main thread blocks on, doing the real work in normal context. Sessions
//! poll [`terminating`] between commands; the listener also shuts their sockets down so that
//! reads blocked in the kernel return at once.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::sys::signal;

/// What the main loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Terminate,
    Reload,
}

pub use crate::sys::signal::terminating;

/// The signals delivered to the main thread.
#[derive(Debug)]
pub struct Signals {
    pending: signal_hook::iterator::Signals,
}

impl Signals {
    /// Block until a signal is pending; termination wins over a reload.
    pub fn wait(&mut self) -> io::Result<Event> {
        loop {
            if terminating() {
                return Ok(Event::Terminate);
            }
            let mut reload = false;
            for sig in self.pending.wait() {
                if sig == SIGHUP {
                    reload = true;
                } else {
                    // Already set by the flag's handler; this only makes the order irrelevant.
                    signal::request_termination();
                }
            }
            if terminating() {
                return Ok(Event::Terminate);
            }
            if reload {
                return Ok(Event::Reload);
            }
        }
    }
}

/// Install the handlers for SIGTERM, SIGINT and SIGHUP (SIGHUP would otherwise kill an inetd
/// session when the terminal of whoever started it goes away). Call once, before threads start.
pub fn install() -> io::Result<Signals> {
    for sig in [SIGTERM, SIGINT] {
        signal::terminate_on(sig)?;
    }
    let pending = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    Ok(Signals { pending })
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
        signal_hook::low_level::raise(SIGHUP).expect("raise");
        assert_eq!(t.join().expect("join").expect("wait"), Event::Reload);
        assert!(!terminating());
    }
}
