//! poll(2) for descriptors std cannot time out on (inetd's stdin pipe).

use std::io;
use std::os::unix::io::RawFd;
use std::time::{Duration, Instant};

/// Wait until `fd` is readable (or at EOF / in error, where a read will not block either),
/// at most `timeout`. `Ok(false)` means the timeout expired. Retries on EINTR with the time
/// that is left, so signals do not stretch the timeout.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so a sub-millisecond rest does not become a busy loop of 0 ms polls.
        let ms = left
            .as_nanos()
            .div_ceil(1_000_000)
            .min(libc::c_int::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n > 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::io::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn poll_readable_times_out_then_sees_data_and_eof() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let start = Instant::now();
        assert!(!poll_readable(b.as_raw_fd(), Duration::from_millis(50)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(50));
        a.write_all(b"x").unwrap();
        assert!(poll_readable(b.as_raw_fd(), Duration::from_secs(5)).unwrap());
        let (c, d) = UnixStream::pair().unwrap();
        drop(c);
        assert!(poll_readable(d.as_raw_fd(), Duration::from_secs(5)).unwrap());
    }

    #[test]
    fn poll_readable_reports_a_closed_descriptor() {
        // Far above any descriptor a test process has open.
        let bogus = 999_999;
        assert_eq!(
            poll_readable(bogus, Duration::from_millis(10))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EBADF)
        );
    }
}
