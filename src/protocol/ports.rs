//! The ports through which the protocol core reaches the outside world.
//!
//! The session state machine only sees these traits, so it can be driven in unit tests by an
//! in-memory maildrop and a fake account store, and in production by the mbox storage and the
//! configured auth backend (wired together in `server::services`).

use std::io::Write;
use std::net::IpAddr;

use crate::protocol::error::{Account, AuthError, StoreError};

/// What a client may learn about one visible message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message size as RFC 1939 §11 defines it: line ends counted as CRLF, the dots added
    /// by byte-stuffing NOT counted. It equals the octets a client holds after un-stuffing the
    /// RETR data, which is what fetchmail and others compare it with.
    pub size: u64,
    /// Unique-id listing: 1..=70 characters in 0x21..=0x7E, unique within the maildrop.
    pub uidl: String,
}

/// What a QUIT commit did, for the session-end log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    pub deleted_messages: usize,
    pub deleted_octets: u64,
    /// Bytes rewritten on disk (0 when nothing was deleted).
    pub rewritten_bytes: u64,
}

/// An opened, locked, indexed maildrop.
///
/// Message indexes are 0-based here; the protocol core converts from POP3's 1-based numbers.
pub trait Maildrop {
    /// How many visible messages there are (hidden pseudo-messages are not listed).
    fn count(&self) -> usize;

    /// The size of visible message `index` (0 when out of range).
    fn size(&self, index: usize) -> u64;

    /// Size and unique-id of visible message `index` (the UIDL rendered on demand: the
    /// storage keeps it compact).
    fn info(&self, index: usize) -> MessageInfo;

    /// Every visible message in maildrop order (a copy; for tests and tools).
    fn messages(&self) -> Vec<MessageInfo> {
        (0..self.count()).map(|i| self.info(i)).collect()
    }

    /// Stream message `index` transmit-encoded (CRLF line ends, dot-stuffed), *without* the
    /// terminating ".\r\n". `top = Some(k)` sends the headers, the blank line and `k` body lines.
    /// The full-message output, un-stuffed, is exactly `messages()[index].size` octets.
    fn write_message(
        &mut self,
        index: usize,
        top: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), StoreError>;

    /// Apply the deletions (sorted, 0-based, visible indexes) and release the maildrop. Called
    /// only for QUIT in the TRANSACTION state. Must be durable before it returns `Ok`.
    fn commit(&mut self, deleted: &[usize]) -> Result<CommitReport, StoreError>;
}

/// Account lookups and maildrop opening, as the session needs them.
pub trait Services {
    /// Verify a user name and password (USER/PASS, SASL PLAIN and LOGIN).
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError>;

    /// The plaintext secret of `user`, for APOP and CRAM-MD5. `Ok(None)` when the backend holds
    /// no plaintext secret for that user (unknown users also give `Ok(None)`).
    fn plaintext_secret(&self, user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError>;

    /// Whether any plaintext secrets exist (APOP / CRAM-MD5 can be offered at all).
    fn has_plaintext_secrets(&self) -> bool;

    /// Open, lock and index the maildrop of an authenticated account. In system-user mode this
    /// is where the session takes the user's credentials before touching the spool.
    fn open_maildrop(&self, account: &Account) -> Result<Box<dyn Maildrop>, StoreError>;

    /// Whether this connection has irreversibly taken a user's identity (even if opening the
    /// maildrop then failed). Such a connection can serve nobody else: the session ends.
    fn bound_to_user(&self) -> bool {
        false
    }

    /// Every login attempt's outcome, for the per-client failure penalty.
    fn auth_outcome(&self, _success: bool) {}

    /// XCLIENT from a trusted proxy named the real client: count penalties and limits for it
    /// from now on. `false` when that client is at its connection limit.
    fn set_client(&self, _ip: IpAddr) -> bool {
        true
    }
}
