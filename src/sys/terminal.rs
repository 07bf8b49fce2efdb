//! Terminal echo control, for reading a password the way passwd(1) does.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Echo is off on a terminal until this is dropped, which restores the saved settings.
pub struct EchoOff {
    fd: RawFd,
    saved: libc::termios,
}

/// Turn echo off on `fd` (which must be a terminal); newlines still echo so the prompt's line
/// ends when the user presses Enter.
pub fn echo_off(fd: BorrowedFd<'_>) -> io::Result<EchoOff> {
    let raw = fd.as_raw_fd();
    // SAFETY: termios is plain old data; tcgetattr fills it in completely on success and we
    // read it only then.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is a descriptor borrowed for this call; `saved` is a valid out pointer.
    if unsafe { libc::tcgetattr(raw, &mut saved) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: as above; `quiet` is a fully initialised termios copied from tcgetattr's.
    if unsafe { libc::tcsetattr(raw, libc::TCSAFLUSH, &quiet) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(EchoOff { fd: raw, saved })
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same descriptor, which the caller keeps
        // open for the guard's lifetime (it borrows the terminal it reads from).
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSAFLUSH, &self.saved);
        }
    }
}
