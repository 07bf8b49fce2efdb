//! Bytes on the wire: bounded line reading, the PROXY protocol header, plain/TLS streams.

pub mod line_reader;
pub mod proxy;
pub mod stream;
pub mod tls;
pub mod tls_config;
