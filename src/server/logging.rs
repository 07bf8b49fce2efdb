//! The `log` backend: env_logger on stderr in the foreground (`-f`), syslog otherwise.
//!
//! In inetd mode stdout and stderr are the client's socket, so nothing may ever be written to
//! them: when syslog cannot be reached there, log records are dropped instead.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use log::LevelFilter;

/// Where log records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// stderr through env_logger; `RUST_LOG` selects the level (default `info`).
    Stderr,
    /// syslog with this facility name (already validated by the config parser). When syslog
    /// is unreachable, fall back to stderr if `stderr_fallback`, else drop records.
    Syslog {
        facility: String,
        stderr_fallback: bool,
    },
}

/// Install the global logger. Returns a note for the caller to log once logging works (for
/// instance that syslog was unreachable), or an error when a logger was already installed.
pub fn init(target: &Target) -> Result<Option<String>, log::SetLoggerError> {
    match target {
        Target::Stderr => {
            init_stderr()?;
            Ok(None)
        }
        Target::Syslog {
            facility,
            stderr_fallback,
        } => {
            let facility =
                syslog::Facility::from_str(facility).unwrap_or(syslog::Facility::LOG_MAIL);
            let formatter = syslog::Formatter3164 {
                facility,
                hostname: None,
                process: String::from("mboxpopd"),
                pid: std::process::id(),
            };
            match syslog::unix(formatter) {
                Ok(logger) => {
                    log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger)))?;
                    log::set_max_level(LevelFilter::Info);
                    Ok(None)
                }
                Err(e) if *stderr_fallback => {
                    init_stderr()?;
                    Ok(Some(format!("syslog unavailable ({e}); logging to stderr")))
                }
                Err(_) => {
                    // Nowhere safe to write: stay silent rather than corrupt the protocol.
                    log::set_max_level(LevelFilter::Off);
                    Ok(None)
                }
            }
        }
    }
}

static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Whether log records go to stderr (`-f`, `-t`, or a daemon whose syslog was unreachable):
/// then a fatal error is printed once, not once by the logger and once more by `main`.
pub fn logs_to_stderr() -> bool {
    TO_STDERR.load(Ordering::SeqCst)
}

fn init_stderr() -> Result<(), log::SetLoggerError> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .target(env_logger::Target::Stderr)
        .try_init()?;
    TO_STDERR.store(true, Ordering::SeqCst);
    Ok(())
}
