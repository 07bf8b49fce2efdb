use std::fmt;
use std::path::PathBuf;

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
