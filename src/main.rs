#![forbid(unsafe_code)]
//! mboxpopd: the command line.
//!
//! Exit status: 0 success, 1 startup failure (configuration, passwd-file, TLS files, port in
//! use), 2 usage error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mboxpopd::config::{AuthBackend, Config};
use mboxpopd::server::logging::{self, Target};
use mboxpopd::server::services::Runtime;
use mboxpopd::server::{inetd, listener, signals};
use mboxpopd::sys::credentials;

const DEFAULT_CONFIG: &str = "/etc/mboxpopd.conf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inetd { implicit_tls: bool, proxy: bool },
    Daemon,
    Check,
}

fn usage(opts: &getopts::Options) -> String {
    opts.usage(&format!(
        "Usage: mboxpopd -i [-T] [-P] [-f] [-c FILE]\n       mboxpopd -d [-f] [-c FILE]\n       \
         mboxpopd -t [-c FILE]\n       \
         mboxpopd user add|passwd|del|list [NAME] [options]   (mboxpopd user --help)\n       \
         mboxpopd pw [-s SCHEME] [--stdin]\n\n\
         A POP3 server for local mbox spools (default config {DEFAULT_CONFIG})."
    ))
}

fn main() -> ExitCode {
    // Before any credential change: journals written as this uid are ours to recover.
    credentials::record_start_euid();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Account administration: `mboxpopd user ...` and `mboxpopd pw`.
    if let Some(first) = args.first().filter(|a| *a == "user" || *a == "pw") {
        return mboxpopd::admin::main(first, &args[1..], Path::new(DEFAULT_CONFIG));
    }
    let mut opts = getopts::Options::new();
    opts.optopt(
        "c",
        "",
        "configuration file (default /etc/mboxpopd.conf)",
        "FILE",
    );
    opts.optflag("i", "", "inetd mode: serve one session on stdin/stdout");
    opts.optflag("T", "", "with -i: implicit TLS on stdin/stdout (port 995)");
    opts.optflag(
        "P",
        "proxy",
        "with -i: a PROXY protocol v1/v2 header precedes the session (HAProxy send-proxy)",
    );
    opts.optflag(
        "d",
        "",
        "standalone daemon on the configured listen addresses",
    );
    opts.optflag(
        "f",
        "",
        "foreground: log to stderr (RUST_LOG sets the level) instead of syslog",
    );
    opts.optflag(
        "t",
        "",
        "check the configuration, passwd-file and TLS files, then exit",
    );
    opts.optflag("V", "", "print the version and exit");
    opts.optflag("h", "", "print this help and exit");
    // Under inetd, stdout and stderr are the client's socket: errors must reach it as one
    // POP3 line, with the details in syslog only.
    let inetd_socket = !args.iter().any(|a| a == "-f" || is_flag_cluster(a, 'f'))
        && args.iter().any(|a| is_flag_cluster(a, 'i'));
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => return usage_error(&e.to_string(), &opts, inetd_socket),
    };
    if m.opt_present("h") {
        print!("{}", usage(&opts));
        return ExitCode::SUCCESS;
    }
    if m.opt_present("V") {
        println!("mboxpopd {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(extra) = m.free.first() {
        let message = format!("unexpected argument `{extra}`");
        return usage_error(&message, &opts, inetd_socket);
    }
    let mode = match (m.opt_present("i"), m.opt_present("d"), m.opt_present("t")) {
        (true, false, false) => Mode::Inetd {
            implicit_tls: m.opt_present("T"),
            proxy: m.opt_present("P"),
        },
        (false, true, false) => Mode::Daemon,
        (false, false, true) => Mode::Check,
        (false, false, false) => {
            return usage_error("one of -i, -d or -t is required", &opts, inetd_socket)
        }
        _ => return usage_error("-i, -d and -t exclude each other", &opts, inetd_socket),
    };
    if m.opt_present("T") && !matches!(mode, Mode::Inetd { .. }) {
        return usage_error("-T only applies to -i", &opts, inetd_socket);
    }
    if m.opt_present("P") && !matches!(mode, Mode::Inetd { .. }) {
        return usage_error(
            "-P only applies to -i (the daemon uses proxy_listen)",
            &opts,
            inetd_socket,
        );
    }
    // `-f` with `-i` is for testing over pipes: under a real inetd stderr is the socket.
    let foreground = m.opt_present("f");
    let config_path = m.opt_str("c");
    match run(mode, foreground, config_path.as_deref().map(Path::new)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) if matches!(mode, Mode::Inetd { .. }) && !foreground => {
            // The logger is already syslog: the details go there, the client gets -ERR.
            log::error!("{message}");
            refuse_client();
            ExitCode::from(1)
        }
        Err(message) => {
            // A daemon logging to syslog records it there too; on stderr once is enough.
            if !logging::logs_to_stderr() {
                log::error!("{message}");
            }
            eprintln!("mboxpopd: {message}");
            ExitCode::from(1)
        }
    }
}

/// Whether `arg` is a cluster of short flags (`-i`, `-iT`, ...) containing `flag`.
fn is_flag_cluster(arg: &str, flag: char) -> bool {
    arg.strip_prefix('-').is_some_and(|f| {
        !f.starts_with('-') && f.chars().all(|c| c.is_ascii_alphabetic()) && f.contains(flag)
    })
}

/// An inetd session that cannot start: the details to syslog, one `-ERR` line to the client
/// (no path or option name leaks to it), exit status 1.
fn inetd_startup_error(message: &str, facility: &str) -> ExitCode {
    let _ = logging::init(&Target::Syslog {
        facility: facility.to_string(),
        stderr_fallback: false,
    });
    log::error!("{message}");
    refuse_client();
    ExitCode::from(1)
}

fn refuse_client() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(b"-ERR [SYS/TEMP] Server configuration error, contact the administrator\r\n")
        .and_then(|()| out.flush());
}

fn usage_error(message: &str, opts: &getopts::Options, inetd_socket: bool) -> ExitCode {
    if inetd_socket {
        inetd_startup_error(&format!("usage: {message}"), "mail");
    } else {
        eprintln!("mboxpopd: {message}\n\n{}", usage(opts));
    }
    ExitCode::from(2)
}

/// `-c FILE` must exist; a missing default file means built-in defaults.
fn load_config(explicit: Option<&Path>) -> Result<Config, String> {
    match explicit {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => {
            let path = PathBuf::from(DEFAULT_CONFIG);
            match std::fs::metadata(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(Config::default()),
                _ => Config::load(&path).map_err(|e| e.to_string()),
            }
        }
    }
}

fn run(mode: Mode, foreground: bool, config_path: Option<&Path>) -> Result<(), String> {
    let loaded = load_config(config_path);
    let facility = loaded
        .as_ref()
        .map(|c| c.syslog_facility.clone())
        .unwrap_or_else(|_| String::from("mail"));
    let target = match mode {
        _ if foreground => Target::Stderr,
        Mode::Check => Target::Stderr,
        Mode::Daemon => Target::Syslog {
            facility,
            stderr_fallback: true,
        },
        Mode::Inetd { .. } => Target::Syslog {
            facility,
            stderr_fallback: false,
        },
    };
    if let Ok(Some(note)) = logging::init(&target) {
        log::warn!("{note}");
    }
    // The default hook prints to stderr, which in inetd mode is the client's socket.
    std::panic::set_hook(Box::new(|info| log::error!("internal error: {info}")));

    let config = loaded?;
    for w in config.warnings() {
        match mode {
            Mode::Check => eprintln!("mboxpopd: warning: {w}"),
            // Once at start-up, not once per connection.
            Mode::Daemon => log::warn!("{w}"),
            Mode::Inetd { .. } => log::debug!("{w}"),
        }
    }
    let origin = config
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| String::from("built-in defaults"));
    let runtime = Runtime::load(config).map_err(|e| e.to_string())?;
    match mode {
        Mode::Check => {
            println!("mboxpopd: configuration OK ({origin})");
            // Like `doveconf -n`: what an admin pastes into a bug report.
            let changed = runtime.config.non_defaults();
            if changed.is_empty() {
                println!("# all settings are the defaults");
            } else {
                println!("# settings that differ from the defaults:");
                for line in changed {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Mode::Inetd {
            implicit_tls,
            proxy,
        } => {
            let _signals = signals::install().map_err(|e| format!("signal setup: {e}"))?;
            drop_to_run_user(&runtime)?;
            let mut runtime = runtime;
            runtime.open_index_cache();
            match inetd::run(runtime, implicit_tls, proxy) {
                Ok(_) => Ok(()),
                // No greeting and no -ERR line: whoever sent no valid header is no client.
                Err(inetd::InetdError::Proxy(why)) => {
                    log::warn!("{why}");
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Mode::Daemon => {
            // Before any thread exists, so every thread inherits the handlers' mask.
            let signals = signals::install().map_err(|e| format!("signal setup: {e}"))?;
            let c = &runtime.config;
            let bound = listener::bind_config(c)?;
            // Session threads act for users; none of them may be traced or dumped.
            if let Err(e) = credentials::set_not_dumpable() {
                log::warn!("cannot mark the process non-dumpable: {e}");
            }
            drop_to_run_user(&runtime)?;
            // After the drop: the directory belongs to the identity the server keeps.
            let mut runtime = runtime;
            runtime.open_index_cache();
            runtime.sweep_index_cache();
            // After the drop, so the scan runs as the sessions do (a later glibc setresuid
            // would switch this thread too, in the middle of a recovery).
            let config = std::sync::Arc::clone(&runtime.config);
            if let Err(e) = std::thread::Builder::new()
                .name(String::from("recover"))
                .spawn(move || recover_spool(&config))
            {
                log::error!("cannot start the start-up recovery: {e}");
            }
            log::info!("mboxpopd {} started ({origin})", env!("CARGO_PKG_VERSION"));
            listener::run(bound, runtime, signals).map_err(|e| format!("listener: {e}"))?;
            log::info!("mboxpopd stopped");
            Ok(())
        }
    }
}

/// Finish or roll back commits that a crash interrupted, and release dot-locks our crashed
/// processes left, so a mailbox nobody opens soon is not left with a journal (and MDAs with a
/// half-rewritten file or a lock they would wait out for many minutes).
///
/// Runs in its own thread while the daemon already serves: it never delays the greeting, and
/// it waits for no lock (a mailbox whose locks are busy is skipped and logged; its next
/// session recovers it before indexing). Only a spool directory shared by all users
/// (`/var/mail/%u`) can be scanned; other templates recover each mailbox when it is opened,
/// which happens in any case.
fn recover_spool(config: &mboxpopd::config::Config) {
    let template = std::path::Path::new(&config.mailbox);
    let Some(dir) = template.parent().filter(|d| {
        let d = d.to_string_lossy();
        !d.is_empty() && !d.contains('%') && !d.starts_with('~')
    }) else {
        return;
    };
    let mut opts = config.mailbox_options(None);
    opts.lock_timeout = std::time::Duration::ZERO;
    let started = std::time::Instant::now();
    match mboxpopd::storage::mailbox::recover_spool_dir(dir, &opts) {
        Ok(results) => {
            for (path, result) in results {
                match result {
                    Ok(r) => log::warn!("start-up recovery of {}: {r:?}", path.display()),
                    Err(mboxpopd::storage::StoreError::InUse(why)) => log::warn!(
                        "start-up recovery of {} skipped ({why}); its next session recovers it",
                        path.display()
                    ),
                    Err(e) => log::error!("start-up recovery of {} failed: {e}", path.display()),
                }
            }
            log::info!(
                "start-up recovery scan of {} done in {} ms",
                dir.display(),
                started.elapsed().as_millis()
            );
        }
        Err(e) => log::warn!("cannot scan {} for interrupted commits: {e}", dir.display()),
    }
}

/// The passwd-file entries that carry no uid (read as root, before any drop).
fn users_without_uid(c: &Config) -> Vec<String> {
    let Some(path) = &c.passwd_file else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    mboxpopd::auth::passwd_file::parse(&text)
        .entries
        .into_iter()
        .filter(|e| e.account.uid.is_none())
        .map(|e| e.account.name)
        .collect()
}

/// Virtual-user mode: once the sockets are bound and the root-only files read, the whole
/// process becomes `user`/`group` (plus the spool group for dot-locks).
fn drop_to_run_user(runtime: &Runtime) -> Result<(), String> {
    let c = &runtime.config;
    let Some(user) = &c.run_user else {
        if credentials::is_root() && c.auth == AuthBackend::PasswdFile {
            let without = users_without_uid(c);
            if !without.is_empty() {
                log::warn!(
                    "virtual users without a uid will be served as root: {} (give them a uid, \
                     or set `user =` and `group =`)",
                    without.join(", ")
                );
            }
        }
        return Ok(());
    };
    if !credentials::is_root() {
        log::warn!("user = {user} ignored: not running as root");
        return Ok(());
    }
    let (uid, user_gid, _home) =
        credentials::lookup_user(user).ok_or_else(|| format!("user {user}: no such user"))?;
    let gid = match &c.run_group {
        Some(g) => {
            credentials::lookup_group(g).ok_or_else(|| format!("group {g}: no such group"))?
        }
        None => user_gid,
    };
    let mut groups = Vec::new();
    if let Some(g) = &c.spool_group {
        groups.push(
            credentials::lookup_group(g)
                .ok_or_else(|| format!("spool_group {g}: no such group"))?,
        );
    }
    // The cache directory must belong to the identity the server keeps; only root can make
    // it so, and only now. An existing one is left as it is and checked after the drop.
    if let Some(dir) = &c.index_cache_dir {
        match mboxpopd::storage::disk_cache::create_owned(dir, uid, gid) {
            Ok(true) => log::info!(
                "created the index cache directory {} for {user}",
                dir.display()
            ),
            Ok(false) => {}
            Err(e) => log::warn!("index_cache_dir {}: cannot create it: {e}", dir.display()),
        }
    }
    credentials::drop_process_to(uid, gid, &groups)
        .map_err(|e| format!("cannot switch to user {user}: {e}"))
}
