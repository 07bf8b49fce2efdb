//! The configuration file (`key = value` lines, `#` comments). See mboxpopd.conf(5).
//!
//! OWNER: server/transport helper implements `Config::parse` / `Config::load` and validation.
//!
//! KEYS (the contract shared by code, tests, etc/mboxpopd.conf and mboxpopd.conf(5)):
//! ```text
//! listen = 0.0.0.0:110 [::]:110     # list, space or comma separated; standalone plain POP3
//! tls_listen = [::]:995             # implicit-TLS listeners (need tls_cert/tls_key)
//! hostname = mail.example.org       # default: the system host name
//! auth = system | passwd-file
//! passwd_file = /etc/mboxpopd/passwd
//! user = mail                       # virtual-user mode: drop to this user after binding
//! group = mail
//! spool_group = mail                # supplementary group for dot-locks in /var/mail
//! mailbox = /var/mail/%u            # %u user, %h home, %% percent
//! mbox_format = mboxo | mboxrd
//! uidl_format = native | popa3d | x-uidl | imap
//! apop = yes | no
//! plaintext_auth = never | tls | always
//! tls_cert = /etc/ssl/certs/pop.pem  # PEM chain (or .p12/.pfx PKCS#12 with empty password)
//! tls_key = /etc/ssl/private/pop.key
//! tls_min_version = 1.2             # 1.0 | 1.1 | 1.2 | 1.3
//! timeout = 10m                     # durations: N (seconds), Ns, Nms, Nm, Nh
//! handshake_timeout = 30s
//! auth_failure_delay = 2s
//! max_auth_failures = 3
//! login_delay = 0                   # seconds advertised as LOGIN-DELAY; absent/0 = not sent
//! max_connections = 200
//! max_connections_per_ip = 10
//! hold_mda_locks = no
//! dotlock_method = excl | link
//! dotlock_stale_age = 5m
//! lock_timeout = 30s
//! syslog_facility = mail
//! ```
//! Booleans: yes/no/true/false/on/off/1/0. Unknown keys and bad values are startup errors
//! naming the file and line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthBackend {
    /// /etc/passwd + /etc/shadow; sessions take the user's uid/gid.
    System,
    /// A Dovecot-style passwd-file of virtual users.
    PasswdFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextAuth {
    /// USER/PASS, AUTH PLAIN/LOGIN never allowed.
    Never,
    /// Allowed on TLS connections and from loopback only.
    Tls,
    /// Always allowed.
    Always,
}

/// How `>From ` lines in message bodies are unquoted on transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MboxFormat {
    /// mboxo / mboxcl: `>From ` quoting is not reversible, bodies are sent as stored.
    Mboxo,
    /// mboxrd: one `>` is removed from `>+From ` lines on RETR/TOP (sizes match).
    Mboxrd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidlFormat {
    /// mboxpopd's own scheme (see mboxpopd.8): digest of the message plus an occurrence
    /// counter for identical messages.
    Native,
    /// popa3d: MD5 over selected raw header lines, 16 hex digits.
    Popa3d,
    /// qpopper / mailutils: reuse an `X-UIDL:` header when present and unique.
    XUidl,
    /// UW c-client / Dovecot default: `%08x%08x` of X-IMAPbase UIDVALIDITY and X-UID.
    Imap,
    /// Dovecot `pop3_uidl_format = %m` (`mbox_md5 = apop3d`): MD5 over the values of the
    /// same header fields as popa3d, 32 hex digits (not popa3d's output). Config value
    /// `dovecot-md5`.
    DovecotMd5,
    /// Dovecot's default `pop3_uidl_format = %08Xu%08Xv`: X-UID first, then UIDVALIDITY (the
    /// reverse of UW's order). Config value `dovecot-uid`.
    DovecotUid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was loaded from (for SIGHUP reloads).
    pub path: Option<PathBuf>,
    /// Plain POP3 listeners (standalone mode). Default `0.0.0.0:110` and `[::]:110`.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (standalone mode). Default none; `[::]:995` typical.
    pub tls_listen: Vec<SocketAddr>,
    /// Host name used in the greeting's APOP timestamp and logs.
    pub hostname: String,

    pub auth: AuthBackend,
    pub passwd_file: Option<PathBuf>,
    /// Virtual-user mode: drop to this user/group right after binding.
    pub run_user: Option<String>,
    pub run_group: Option<String>,
    /// Group that may create dot-locks in the spool directory (Debian: `mail`).
    pub spool_group: Option<String>,

    /// Mailbox path template: `%u` user, `%h` home, `%%` a literal percent. Default
    /// `/var/mail/%u`.
    pub mailbox: String,
    pub mbox_format: MboxFormat,
    pub uidl_format: UidlFormat,

    pub apop: bool,
    pub plaintext_auth: PlaintextAuth,
    pub tls: Option<TlsConfig>,

    /// Inactivity timeout (RFC 1939 minimum: 10 minutes).
    pub timeout: Duration,
    /// TLS handshake timeout.
    pub handshake_timeout: Duration,
    pub auth_failure_delay: Duration,
    pub max_auth_failures: u32,
    /// Advertised LOGIN-DELAY in seconds (RFC 2449), if any.
    pub login_delay: Option<u64>,

    pub max_connections: usize,
    pub max_connections_per_ip: usize,

    /// Hold the dot-lock and fcntl lock for the whole session (classic behaviour) instead of
    /// only while indexing and committing.
    pub hold_mda_locks: bool,
    /// Use link(2) instead of O_EXCL to create dot-locks (NFSv2).
    pub dotlock_use_link: bool,
    /// A dot-lock older than this, whose owner is gone, is taken over.
    pub dotlock_stale_age: Duration,
    /// How long to wait for an MDA's locks before `-ERR [IN-USE]`.
    pub lock_timeout: Duration,

    /// syslog facility name (default `mail`).
    pub syslog_facility: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            listen: vec![
                "0.0.0.0:110".parse().expect("valid"),
                "[::]:110".parse().expect("valid"),
            ],
            tls_listen: Vec::new(),
            hostname: String::from("localhost"),
            auth: AuthBackend::System,
            passwd_file: None,
            run_user: None,
            run_group: None,
            spool_group: Some(String::from("mail")),
            mailbox: String::from("/var/mail/%u"),
            mbox_format: MboxFormat::Mboxo,
            uidl_format: UidlFormat::Native,
            apop: false,
            plaintext_auth: PlaintextAuth::Tls,
            tls: None,
            timeout: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(30),
            auth_failure_delay: Duration::from_secs(2),
            max_auth_failures: 3,
            login_delay: None,
            max_connections: 200,
            max_connections_per_ip: 10,
            hold_mda_locks: false,
            dotlock_use_link: false,
            dotlock_stale_age: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(30),
            syslog_facility: String::from("mail"),
        }
    }
}
