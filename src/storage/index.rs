//! One-pass mbox indexer. OWNER: storage-format helper.
//!
//! CONTRACT (relied on by `mailbox` and `commit`):
//! ```ignore
//! pub struct IndexOptions { pub format: MboxFormat, pub uidl: UidlFormat }
//! pub struct IndexedMessage {
//!     pub from_offset: u64,   // first byte of the "From " line
//!     pub header_offset: u64, // first byte after the From_ line's line end
//!     pub end_offset: u64,    // end of the message content (excl. the separator line end
//!                             // that precedes the next From_ line)
//!     pub next_offset: u64,   // from_offset of the next message, or the indexed length
//!     pub size: u64,          // octets RETR sends before ".\r\n" (encode::transmit_size)
//!     pub uidl: String,
//!     pub hidden: bool,       // c-client/Dovecot pseudo message: never listed, kept on commit
//!     pub from_line: Vec<u8>, // the From_ line (capped at 256 bytes), to detect foreign rewrites
//! }
//! pub struct Index { pub messages: Vec<IndexedMessage>, pub length: u64 }
//! pub enum IndexError { NotMbox(String), Io(std::io::Error) }
//! pub fn index_mbox<R: std::io::Read>(reader: R, opts: &IndexOptions) -> Result<Index, IndexError>;
//! ```
//! Deleting message i removes exactly the bytes `[from_offset, next_offset)`.
