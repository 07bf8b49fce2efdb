//! The mbox maildrop.
//!
//! Pure logic (no files): `index` (one pass over the bytes, memchr), `encode` (the transmit
//! encoder shared by sizing and RETR/TOP), `uidl` (UIDL schemes).
//! I/O: `lock` (fs2 session lock, dot-lock, fcntl), `mailbox` (open/serve, implements
//! `protocol::Maildrop`), `read_ahead` (the bytes of the next messages for RETR and TOP), `commit` + `journal` (crash-safe in-place rewrite and recovery; both
//! write only through `fault`, the file operations with their crash points; `error` maps I/O
//! errors for all of them), `cache` (indexes kept in memory) and `disk_cache` (indexes kept in
//! a cache directory),
//! `imapbase` (moving the UIDVALIDITY header to the new first message; pure but for one reader).

pub mod encode;
pub mod error;
pub mod fault;
pub mod format;
pub mod imapbase;
pub mod index;
pub mod path;
pub mod uidl;

pub mod cache;
pub mod commit;
pub mod disk_cache;
pub mod journal;
pub mod lock;
pub mod mailbox;
pub mod read_ahead;

pub use error::StoreError;
