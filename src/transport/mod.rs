//! Bytes on the wire: bounded line reading and plain/TLS streams.

pub mod line_reader;
pub mod stream;
pub mod tls;
