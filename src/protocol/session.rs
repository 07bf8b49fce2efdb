//! The POP3 session state machine. OWNER: lead (protocol core).
//!
//! CONTRACT used by `server::connection` (the I/O driver):
//! ```ignore
//! pub struct SessionParams {
//!     pub hostname: String,
//!     pub implementation: String,          // "mboxpopd 0.1.0"
//!     pub apop_timestamp: Option<String>,  // "<pid.nanos@host>" when APOP is on and usable
//!     pub tls_active: bool,                // implicit TLS (995, inetd -T) from the start
//!     pub stls_available: bool,            // a TLS acceptor exists and STLS may be offered
//!     pub plaintext_auth: PlaintextAuth,
//!     pub peer_is_loopback: bool,          // inetd over pipes counts as loopback
//!     pub login_delay: Option<u64>,
//!     pub max_auth_failures: u32,
//!     pub auth_failure_delay: Duration,
//! }
//! pub enum Flow { Continue, Close, StartTls }
//! pub struct Step { pub flow: Flow, pub delay: Option<Duration> } // sleep `delay` before flushing
//! impl<'a> Session<'a> {
//!     pub fn new(services: &'a dyn Services, params: SessionParams) -> Self;
//!     pub fn greeting(&self, out: &mut dyn Write) -> io::Result<()>;
//!     pub fn max_line_len(&self) -> usize;             // cap the reader applies to the next line
//!     pub fn handle_line(&mut self, line: &[u8], out: &mut dyn Write) -> Step; // line w/o CRLF/LF
//!     pub fn line_too_long(&mut self, out: &mut dyn Write) -> Step;          // reader overflowed
//!     pub fn tls_started(&mut self);                   // after a successful STLS handshake
//!     pub fn summary(&self) -> SessionSummary;         // for the one log line per session
//! }
//! pub struct SessionSummary { pub user: Option<String>, pub retrieved: (u64 msgs, u64 octets),
//!     pub deleted: (u64, u64), pub end: &'static str /* "quit", "eof", "timeout", ... */ }
//! ```
//! The driver batches output: it flushes after a step only when no further pipelined line is
//! already buffered, so each response leaves in as few writes as possible.
