//! The types that cross the protocol's ports: the account a login yields, and the typed
//! authentication and maildrop errors. They are mapped to POP3 response codes in exactly one
//! place, `protocol::response`. Storage and auth implement the ports and use these types; the
//! protocol depends on nothing but itself.

use std::fmt;
use std::io;
use std::path::PathBuf;

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

/// An authenticated (or looked-up) account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The validated login name (safe to substitute into the mailbox template).
    pub name: String,
    /// Numeric uid/gid the session runs as when touching the spool (system users, or
    /// passwd-file users that carry them). `None` means "the process's own credentials".
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<PathBuf>,
    /// A per-user mailbox path from the backend (passwd-file `extra` field `mail=...`),
    /// overriding the configured template.
    pub mailbox: Option<PathBuf>,
}

#[derive(Debug)]
pub enum AuthError {
    /// Unknown user, wrong password, disabled or malformed account: the same answer for all,
    /// `-ERR [AUTH]`.
    Invalid,
    /// The backend could not be consulted (unreadable file, I/O): `-ERR [SYS/TEMP]`.
    Temporary(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Invalid => write!(f, "invalid credentials"),
            AuthError::Temporary(m) => write!(f, "authentication backend unavailable: {m}"),
        }
    }
}

impl std::error::Error for AuthError {}
