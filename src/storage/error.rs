//! Maildrop errors: the type is the protocol's (`protocol::StoreError`), since it crosses the
//! `Maildrop` port; storage raises it.

use std::io;
use std::path::Path;

pub use crate::protocol::StoreError;

/// Map an I/O error of the maildrop (reading, committing, recovering) to a maildrop error.
pub(crate) fn io_error(what: &str, path: &Path, e: &io::Error) -> StoreError {
    let msg = format!("{what} {}: {e}", path.display());
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            StoreError::Temporary(format!("{msg} (disk full; mailbox unchanged)"))
        }
        Some(libc::EROFS) => StoreError::Permanent(format!("{msg} (read-only file system)")),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            StoreError::Permanent(format!("{msg} (permission denied)"))
        }
        _ => StoreError::Temporary(msg),
    }
}
