//! Process resource limits.

use std::io;

/// Raise the soft limit on open descriptors to the hard limit, which an unprivileged process
/// may always do. Every connection holds a socket (and a logged-in one a few mailbox files),
/// and the usual soft limit of 1,024 would cap a daemon far below `max_connections`. Returns
/// the (soft, hard) limits now in force.
pub fn raise_open_files() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a pointer to a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Descriptors a logged-in session may hold at once: its socket, the mailbox, the session lock,
/// the dot-lock and journal while committing, and a spare.
pub const FILES_PER_SESSION: u64 = 6;

/// Descriptors the daemon itself keeps: listeners, log, passwd-file, TLS files, std streams.
pub const FILES_RESERVED: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (soft, hard) = raise_open_files().unwrap();
        assert_eq!(soft, hard);
        // Idempotent.
        assert_eq!(raise_open_files().unwrap(), (soft, hard));
    }
}
