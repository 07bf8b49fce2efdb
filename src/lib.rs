//! mboxpopd: a POP3 server for local mbox spools.
//!
//! The crate is split along the architecture:
//! - [`protocol`]: POP3 command parsing and the session state machine, free of sockets and files.
//! - [`storage`]: the mbox maildrop: indexing, transmit encoding, UIDLs, locks, crash-safe commit,
//!   index caches.
//! - [`auth`]: account backends (passwd-file, system, PAM) and password-hash verification.
//! - [`transport`]: bounded line reading, plain/TLS streams.
//! - [`server`]: inetd and standalone drivers, privilege dropping, signals, logging.
//! - [`config`]: the configuration file.
//! - [`admin`]: `mboxpopd user` and `mboxpopd pw`, passwd-file accounts from the command line.
//! - [`sys`]: the syscall layer (credentials, fcntl locks, poll, the termination flag), the
//!   only `unsafe`.

#![deny(unsafe_code)]

// One clear message instead of errors deep in `sys`: sessions take users' identities per
// thread (setfsuid, per-thread capabilities and groups), which only Linux offers.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "mboxpopd builds for Linux only: it relies on per-thread credentials (setfsuid, capabilities), \
     copy_file_range(2) and /proc"
);

pub mod admin;
pub mod auth;
pub mod config;
pub mod protocol;
pub mod server;
pub mod storage;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;
