//! The POP3 protocol core: command parsing, responses, the session state machine and SASL.
//! Nothing here opens a socket or a file: the session talks to the world through `ports`.

pub mod command;
pub mod error;
pub mod ports;
pub mod response;
pub mod sasl;
pub mod session;

pub use error::{Account, AuthError, StoreError};
pub use ports::{CommitReport, Maildrop, MessageInfo, Services};
