//! The transmit encoder. OWNER: storage-format helper.
//!
//! CONTRACT: a streaming, allocation-bounded state machine that turns stored message bytes
//! (`[header_offset, end_offset)`) into POP3 transmit form: LF or CRLF → CRLF, leading "." → "..",
//! mailbox-private headers hidden, optional mboxrd unquoting, TOP line limits. The same code
//! computes sizes (counting sink) and writes RETR/TOP output, so they cannot disagree.
//! ```ignore
//! pub struct EncodeOptions { pub format: MboxFormat, pub top: Option<u64> }
//! pub struct Encoder { .. }
//! impl Encoder {
//!     pub fn new(opts: EncodeOptions) -> Self;
//!     pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>);  // out grows by O(input)
//!     pub fn finish(&mut self, out: &mut Vec<u8>);  // ensures final CRLF
//!     pub fn done(&self) -> bool;                   // TOP limit reached: stop reading early
//! }
//! pub fn encode_to<R: Read, W: Write + ?Sized>(src: R, opts: EncodeOptions, out: &mut W) -> io::Result<u64>;
//! pub fn transmit_size(message: &[u8], format: MboxFormat) -> u64;
//! ```
