//! Typed maildrop errors. They are mapped to POP3 response codes in exactly one place:
//! `protocol::response`.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum StoreError {
    /// Another session holds the maildrop, or an MDA's lock was not released in time: `[IN-USE]`.
    InUse(String),
    /// A transient failure (I/O error, disk full, lock timeout, foreign rewrite): `[SYS/TEMP]`.
    Temporary(String),
    /// A failure that retrying will not fix (not an mbox, symlink, wrong owner): `[SYS/PERM]`.
    Permanent(String),
    /// Another program rewrote the mailbox during the session; nothing was served or changed
    /// from stale offsets: `[SYS/TEMP]`, and the session ends without committing.
    Changed(String),
    /// Writing to the client failed; the session is over.
    Client(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InUse(m) => write!(f, "maildrop in use: {m}"),
            StoreError::Temporary(m) => write!(f, "temporary maildrop failure: {m}"),
            StoreError::Permanent(m) => write!(f, "maildrop failure: {m}"),
            StoreError::Changed(m) => write!(f, "maildrop changed by another program: {m}"),
            StoreError::Client(e) => write!(f, "client write failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}
