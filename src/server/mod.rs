//! Running sessions: inetd and standalone drivers, privileges, signals, logging.

pub mod clients;
pub mod connection;
pub mod inetd;
pub mod listener;
pub mod logging;
pub mod services;
pub mod signals;
