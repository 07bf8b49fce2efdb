//! The configuration file (`key = value` lines, `#` comments). See mboxpopd.conf(5).
//!
//! Every key is one row of [`SETTINGS`]: its name, a one-line description, how a value is
//! parsed into [`Config`] and how it is written back. Parsing, the list of valid keys, the
//! non-default listing of `mboxpopd -t` and the check that mboxpopd.conf(5) and
//! etc/mboxpopd.conf describe every key all derive from that table; the defaults are
//! [`Config::default`]. Cross-key rules live in `finish`, advice in [`Config::warnings`].
//!
//! Booleans: yes/no/true/false/on/off/1/0. Unknown keys and bad values are startup errors
//! naming the file and line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use crate::auth::AuthBackend;
pub use crate::protocol::session::PlaintextAuth;
pub use crate::storage::format::{MboxFormat, UidlFormat};
use crate::storage::mailbox::MailboxOptions;
pub use crate::transport::tls_config::{TlsConfig, TlsVersion};

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was loaded from (for SIGHUP reloads).
    pub path: Option<PathBuf>,
    /// Plain POP3 listeners (standalone mode). Default `0.0.0.0:110` and `[::]:110`.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (standalone mode). Default none; `[::]:995` typical.
    pub tls_listen: Vec<SocketAddr>,
    /// Plain POP3 listeners whose connections start with a PROXY protocol header.
    pub proxy_listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners behind a TCP proxy: the PROXY header comes before the handshake.
    pub proxy_tls_listen: Vec<SocketAddr>,
    /// Peers allowed to send a PROXY header (on the proxy listeners) and XCLIENT (anywhere).
    pub proxy_trusted_networks: Vec<Network>,
    /// Host name used in the greeting's APOP timestamp and logs.
    pub hostname: String,

    pub auth: AuthBackend,
    pub passwd_file: Option<PathBuf>,
    /// PAM service name (`/etc/pam.d/NAME`) for `auth = pam`.
    pub pam_service: String,
    /// Longest a PAM conversation may take before the login fails with `[SYS/TEMP]`.
    pub pam_timeout: Duration,
    /// PAM conversations running at once (modules may block or be thread-unsafe).
    pub pam_max_concurrent: usize,
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
    /// Total time a connection may take to log in, whatever it sends meanwhile.
    pub login_timeout: Duration,
    /// How long one write to a client that reads nothing may block.
    pub send_timeout: Duration,
    pub auth_failure_delay: Duration,
    /// Upper bound of the per-client failure penalty.
    pub auth_penalty_max: Duration,
    /// Password checks one client may have running at once.
    pub max_auth_checks_per_client: usize,
    pub max_auth_failures: u32,
    /// Advertised LOGIN-DELAY in seconds (RFC 2449), if any.
    pub login_delay: Option<u64>,

    pub max_connections: usize,
    /// Connections per client, a client being an address masked to the prefixes below.
    pub max_connections_per_ip: usize,
    pub client_prefix_ipv4: u8,
    pub client_prefix_ipv6: u8,

    /// Hold the dot-lock and fcntl lock for the whole session (classic behaviour) instead of
    /// only while indexing and committing.
    pub hold_mda_locks: bool,
    /// Use link(2) instead of O_EXCL to create dot-locks (NFSv2).
    pub dotlock_use_link: bool,
    /// A dot-lock older than this, whose owner is gone, is taken over.
    pub dotlock_stale_age: Duration,
    /// How long to wait for an MDA's locks before `-ERR [IN-USE]`.
    pub lock_timeout: Duration,
    /// Where indexes are kept between sessions (`None`: nowhere on disk).
    pub index_cache_dir: Option<PathBuf>,

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
            proxy_listen: Vec::new(),
            proxy_tls_listen: Vec::new(),
            proxy_trusted_networks: Vec::new(),
            hostname: system_hostname(),
            auth: AuthBackend::System,
            passwd_file: None,
            pam_service: String::from("mboxpopd"),
            pam_timeout: Duration::from_secs(30),
            pam_max_concurrent: 4,
            run_user: None,
            run_group: None,
            spool_group: Some(String::from("mail")),
            mailbox: String::from("/var/mail/%u"),
            mbox_format: MboxFormat::Mboxo,
            uidl_format: UidlFormat::Native,
            apop: false,
            // `tls` only where TLS can be had (see `Config::parse`): without a certificate it
            // would lock every remote USER/PASS client out of a server that replaces popa3d
            // in inetd.conf. No file and an empty file must behave the same.
            plaintext_auth: PlaintextAuth::Always,
            tls: None,
            timeout: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(120),
            auth_failure_delay: Duration::from_secs(2),
            auth_penalty_max: Duration::from_secs(15),
            max_auth_checks_per_client: 1,
            max_auth_failures: 3,
            login_delay: None,
            max_connections: 200,
            max_connections_per_ip: 10,
            client_prefix_ipv4: 32,
            client_prefix_ipv6: 64,
            hold_mda_locks: false,
            dotlock_use_link: false,
            dotlock_stale_age: Duration::from_secs(300),
            lock_timeout: Duration::from_secs(30),
            index_cache_dir: Some(PathBuf::from("/var/cache/mboxpopd")),
            syslog_facility: String::from("mail"),
        }
    }
}

/// The RFC 1939 §3 minimum for the autologout timer.
pub const RFC_MIN_TIMEOUT: Duration = Duration::from_secs(600);

/// A configuration error, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name (or another description of where the text came from).
    pub origin: String,
    /// 1-based line number; `None` for errors about the file as a whole.
    pub line: Option<usize>,
    /// The key concerned, when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The account backend's settings.
    pub fn auth_settings(&self) -> crate::auth::BackendSettings {
        crate::auth::BackendSettings {
            backend: self.auth,
            passwd_file: self.passwd_file.clone(),
            pam_service: self.pam_service.clone(),
            pam_timeout: self.pam_timeout,
            pam_max_concurrent: self.pam_max_concurrent,
        }
    }

    /// How sessions open maildrops; `owner_uid` is the uid the mailbox must belong to
    /// (system users), None to skip that check.
    pub fn mailbox_options(&self, owner_uid: Option<u32>) -> MailboxOptions {
        MailboxOptions {
            format: self.mbox_format,
            uidl: self.uidl_format,
            hold_mda_locks: self.hold_mda_locks,
            dotlock_use_link: self.dotlock_use_link,
            dotlock_stale_age: self.dotlock_stale_age,
            lock_timeout: self.lock_timeout,
            owner_uid,
            journal_writers: crate::storage::mailbox::journal_writers(self.run_user.as_deref()),
        }
    }

    /// Read and parse a configuration file. The path is remembered for SIGHUP reloads.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Config::parse(&text, &origin)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse configuration text; `origin` names the source in error messages. Keys left out
    /// keep their defaults.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut seen: Vec<(&'static str, usize)> = Vec::new();
        let mut tls = TlsParts::default();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            let err = |key: Option<&str>, message: String| ConfigError {
                origin: origin.to_string(),
                line: Some(line_no),
                key: key.map(str::to_string),
                message,
            };
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(None, format!("expected `key = value`, got `{line}`")));
            };
            let key = key.trim();
            let value = value.trim();
            let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
                return Err(err(Some(key), String::from("unknown key")));
            };
            let known = setting.key;
            // A repeated key is almost always an editing mistake; silently letting the last
            // one win would hide it.
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == known) {
                return Err(err(
                    Some(key),
                    format!("duplicate key (first set on line {first})"),
                ));
            }
            seen.push((known, line_no));
            (setting.apply)(&mut config, value, &mut tls).map_err(|m| err(Some(key), m))?;
        }
        config.finish(tls).map_err(|(key, message)| ConfigError {
            origin: origin.to_string(),
            line: key.and_then(|k| seen.iter().find(|(s, _)| *s == k).map(|(_, l)| *l)),
            key: key.map(str::to_string),
            message,
        })?;
        // `tls` is the default only where TLS can be had: without a certificate it would lock
        // every remote USER/PASS client out of a server that replaces popa3d in inetd.conf.
        if !seen.iter().any(|(k, _)| *k == "plaintext_auth") {
            config.plaintext_auth = default_plaintext_auth(config.tls.is_some());
        }
        Ok(config)
    }

    /// Settings that are legal but unwise, for a startup warning.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.timeout < RFC_MIN_TIMEOUT {
            out.push(format!(
                "timeout {}s is below the RFC 1939 minimum of 10 minutes",
                self.timeout.as_secs_f64()
            ));
        }
        if self.tls.is_none() && self.plaintext_auth == PlaintextAuth::Always {
            out.push(String::from(
                "no TLS certificate: passwords travel in cleartext (set tls_cert/tls_key)",
            ));
        }
        if self.apop && self.auth != AuthBackend::PasswdFile {
            out.push(String::from(
                "apop = yes has no effect with auth = system or pam (no plaintext secrets)",
            ));
        }
        if self.plaintext_auth == PlaintextAuth::Never && self.auth != AuthBackend::PasswdFile {
            out.push(String::from(
                "plaintext_auth = never with auth = system or pam: no login can succeed \
                 (these backends only check passwords sent in USER/PASS, PLAIN or LOGIN)",
            ));
        }
        if self.auth == AuthBackend::Pam && self.run_user.is_some() {
            out.push(String::from(
                "auth = pam with user =: PAM modules and the switch to each user need root, \
                 which the process gives up after binding",
            ));
        }
        if self.plaintext_auth == PlaintextAuth::Never && !self.apop {
            out.push(String::from(
                "plaintext_auth = never without apop: only SASL challenge-response logins work",
            ));
        }
        out
    }

    /// The settings that differ from the built-in defaults, as `key = value` lines in the
    /// order of [`SETTINGS`] (for `mboxpopd -t`, like `doveconf -n`). Every value parses back
    /// to the same setting.
    pub fn non_defaults(&self) -> Vec<String> {
        let defaults = Config::default();
        let have_tls = self.tls.is_some();
        SETTINGS
            .iter()
            .filter_map(|s| {
                let mine = (s.render)(self);
                let default = if s.key == "plaintext_auth" {
                    // The default depends on whether TLS is configured.
                    render_plaintext(default_plaintext_auth(have_tls))
                } else {
                    (s.render)(&defaults)
                };
                (mine != default).then(|| format!("{} = {mine}", s.key))
            })
            .collect()
    }

    /// One setting in the file's syntax (`None` for an unknown key).
    pub fn render(&self, key: &str) -> Option<String> {
        SETTINGS
            .iter()
            .find(|s| s.key == key)
            .map(|s| (s.render)(self))
    }

    /// Cross-key validation, after every line was read. Errors name the key at fault.
    fn finish(&mut self, tls: TlsParts) -> Result<(), (Option<&'static str>, String)> {
        self.tls = match (tls.cert, tls.key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert,
                key,
                min_version: tls.min_version.unwrap_or(TlsVersion::Tls12),
            }),
            (Some(_), None) => {
                return Err((Some("tls_cert"), String::from("tls_cert needs tls_key")));
            }
            (None, Some(_)) => {
                return Err((Some("tls_key"), String::from("tls_key needs tls_cert")));
            }
            (None, None) => {
                if tls.min_version.is_some() {
                    return Err((
                        Some("tls_min_version"),
                        String::from("tls_min_version needs tls_cert and tls_key"),
                    ));
                }
                None
            }
        };
        if !self.tls_listen.is_empty() && self.tls.is_none() {
            return Err((
                Some("tls_listen"),
                String::from("tls_listen needs tls_cert and tls_key"),
            ));
        }
        if !self.proxy_tls_listen.is_empty() && self.tls.is_none() {
            return Err((
                Some("proxy_tls_listen"),
                String::from("proxy_tls_listen needs tls_cert and tls_key"),
            ));
        }
        if (!self.proxy_listen.is_empty() || !self.proxy_tls_listen.is_empty())
            && self.proxy_trusted_networks.is_empty()
        {
            let key = if self.proxy_listen.is_empty() {
                "proxy_tls_listen"
            } else {
                "proxy_listen"
            };
            return Err((
                Some(key),
                format!("{key} needs proxy_trusted_networks (the proxies' addresses)"),
            ));
        }
        if self.auth == AuthBackend::PasswdFile && self.passwd_file.is_none() {
            return Err((
                Some("auth"),
                String::from("auth = passwd-file needs passwd_file"),
            ));
        }
        if self.run_group.is_some() && self.run_user.is_none() {
            return Err((Some("group"), String::from("group needs user")));
        };
        Ok(())
    }
}

/// How one key is read and written back. Parsing, the list of valid keys, `mboxpopd -t` and
/// the documentation check all derive from [`SETTINGS`]; the defaults are [`Config::default`].
pub struct Setting {
    pub key: &'static str,
    /// One line for `mboxpopd -t` and the documentation check.
    pub help: &'static str,
    apply: fn(&mut Config, &str, &mut TlsParts) -> Result<(), String>,
    render: fn(&Config) -> String,
}

/// Every key the file may contain, one row each, in the order of mboxpopd.conf(5).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        help: "standalone plain POP3 listeners (space or comma separated)",
        apply: |c, value, _| {
            c.listen = parse_addrs(value)?;
            Ok(())
        },
        render: |c| render_addrs(&c.listen),
    },
    Setting {
        key: "tls_listen",
        help: "standalone implicit-TLS listeners (need tls_cert/tls_key)",
        apply: |c, value, _| {
            c.tls_listen = parse_addrs(value)?;
            Ok(())
        },
        render: |c| render_addrs(&c.tls_listen),
    },
    Setting {
        key: "proxy_listen",
        help: "plain POP3 behind a proxy: a PROXY v1/v2 header first",
        apply: |c, value, _| {
            c.proxy_listen = parse_addrs(value)?;
            Ok(())
        },
        render: |c| render_addrs(&c.proxy_listen),
    },
    Setting {
        key: "proxy_tls_listen",
        help: "implicit TLS behind a TCP proxy: header, then handshake",
        apply: |c, value, _| {
            c.proxy_tls_listen = parse_addrs(value)?;
            Ok(())
        },
        render: |c| render_addrs(&c.proxy_tls_listen),
    },
    Setting {
        key: "proxy_trusted_networks",
        help: "who may send PROXY headers and XCLIENT",
        apply: |c, value, _| {
            c.proxy_trusted_networks = parse_networks(value)?;
            Ok(())
        },
        render: |c| {
            c.proxy_trusted_networks
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        },
    },
    Setting {
        key: "hostname",
        help: "host name for the greeting and APOP timestamps (default: the system's)",
        apply: |c, value, _| {
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("invalid host name `{value}`"));
            }
            c.hostname = value.to_string();
            Ok(())
        },
        render: |c| c.hostname.clone(),
    },
    Setting {
        key: "auth",
        help: "account backend: system, pam or passwd-file",
        apply: |c, value, _| {
            c.auth = match value {
                "system" => AuthBackend::System,
                "passwd-file" => AuthBackend::PasswdFile,
                "pam" => AuthBackend::Pam,
                _ => {
                    return Err(format!(
                        "expected system, pam or passwd-file, got `{value}`"
                    ))
                }
            };
            Ok(())
        },
        render: |c| {
            String::from(match c.auth {
                AuthBackend::System => "system",
                AuthBackend::PasswdFile => "passwd-file",
                AuthBackend::Pam => "pam",
            })
        },
    },
    Setting {
        key: "passwd_file",
        help: "Dovecot-style passwd-file of virtual users (auth = passwd-file)",
        apply: |c, value, _| {
            c.passwd_file = Some(parse_path(value)?);
            // A file name under /etc/pam.d: no path separators, nothing PAM would refuse.;
            Ok(())
        },
        render: |c| render_path(c.passwd_file.as_deref()),
    },
    Setting {
        key: "pam_service",
        help: "PAM service, /etc/pam.d/NAME (auth = pam)",
        apply: |c, value, _| {
            c.pam_service = parse_name(value)?;
            Ok(())
        },
        render: |c| c.pam_service.clone(),
    },
    Setting {
        key: "pam_timeout",
        help: "longest one PAM conversation may take",
        apply: |c, value, _| {
            c.pam_timeout = parse_duration(value).and_then(nonzero)?;
            Ok(())
        },
        render: |c| render_duration(c.pam_timeout),
    },
    Setting {
        key: "pam_max_concurrent",
        help: "PAM conversations running at once",
        apply: |c, value, _| {
            c.pam_max_concurrent = parse_positive(value)?;
            Ok(())
        },
        render: |c| c.pam_max_concurrent.to_string(),
    },
    Setting {
        key: "user",
        help: "virtual-user mode: drop to this user after binding",
        apply: |c, value, _| {
            c.run_user = Some(parse_name(value)?);
            Ok(())
        },
        render: |c| render_opt(&c.run_user),
    },
    Setting {
        key: "group",
        help: "virtual-user mode: group to drop to (default: the user's)",
        apply: |c, value, _| {
            c.run_group = Some(parse_name(value)?);
            Ok(())
        },
        render: |c| render_opt(&c.run_group),
    },
    Setting {
        key: "spool_group",
        help: "supplementary group for dot-locks in /var/mail",
        apply: |c, value, _| {
            // An empty value switches the supplementary spool group off.
            c.spool_group = if value.is_empty() {
                None
            } else {
                Some(parse_name(value)?)
            };
            Ok(())
        },
        render: |c| render_opt(&c.spool_group),
    },
    Setting {
        key: "mailbox",
        help: "mailbox path template: %u user, %h home, %% percent",
        apply: |c, value, _| {
            c.mailbox = parse_template(value)?;
            Ok(())
        },
        render: |c| c.mailbox.clone(),
    },
    Setting {
        key: "mbox_format",
        help: "mboxo or mboxrd (how >From lines are unquoted)",
        apply: |c, value, _| {
            c.mbox_format = match value {
                "mboxo" => MboxFormat::Mboxo,
                "mboxrd" => MboxFormat::Mboxrd,
                _ => return Err(format!("expected mboxo or mboxrd, got `{value}`")),
            };
            Ok(())
        },
        render: |c| {
            String::from(match c.mbox_format {
                MboxFormat::Mboxo => "mboxo",
                MboxFormat::Mboxrd => "mboxrd",
            })
        },
    },
    Setting {
        key: "uidl_format",
        help: "UIDL scheme: native, popa3d, dovecot-md5, dovecot-uid, x-uidl or imap",
        apply: |c, value, _| {
            c.uidl_format = match value {
                "native" => UidlFormat::Native,
                "popa3d" => UidlFormat::Popa3d,
                "x-uidl" => UidlFormat::XUidl,
                "imap" => UidlFormat::Imap,
                "dovecot-md5" => UidlFormat::DovecotMd5,
                "dovecot-uid" => UidlFormat::DovecotUid,
                _ => {
                    return Err(format!(
                        "expected native, popa3d, dovecot-md5, dovecot-uid, x-uidl or imap, \
                             got `{value}`"
                    ))
                }
            };
            Ok(())
        },
        render: |c| {
            String::from(match c.uidl_format {
                UidlFormat::Native => "native",
                UidlFormat::Popa3d => "popa3d",
                UidlFormat::XUidl => "x-uidl",
                UidlFormat::Imap => "imap",
                UidlFormat::DovecotMd5 => "dovecot-md5",
                UidlFormat::DovecotUid => "dovecot-uid",
            })
        },
    },
    Setting {
        key: "apop",
        help: "offer APOP (passwd-file {PLAIN} secrets only)",
        apply: |c, value, _| {
            c.apop = parse_bool(value)?;
            Ok(())
        },
        render: |c| render_bool(c.apop),
    },
    Setting {
        key: "plaintext_auth",
        help: "when USER/PASS, PLAIN and LOGIN are accepted: never, tls or always",
        apply: |c, value, _| {
            c.plaintext_auth = match value {
                "never" => PlaintextAuth::Never,
                "tls" => PlaintextAuth::Tls,
                "always" => PlaintextAuth::Always,
                _ => return Err(format!("expected never, tls or always, got `{value}`")),
            };
            Ok(())
        },
        render: |c| render_plaintext(c.plaintext_auth),
    },
    Setting {
        key: "tls_cert",
        help: "certificate chain, PEM (or PKCS#12 with an empty password)",
        apply: |_, value, tls| {
            tls.cert = Some(parse_path(value)?);
            Ok(())
        },
        render: |c| render_path(c.tls.as_ref().map(|t| t.cert.as_path())),
    },
    Setting {
        key: "tls_key",
        help: "private key of tls_cert",
        apply: |_, value, tls| {
            tls.key = Some(parse_path(value)?);
            Ok(())
        },
        render: |c| render_path(c.tls.as_ref().map(|t| t.key.as_path())),
    },
    Setting {
        key: "tls_min_version",
        help: "oldest TLS version accepted: 1.0, 1.1, 1.2 or 1.3",
        apply: |_, value, tls| {
            tls.min_version = Some(match value {
                "1.0" => TlsVersion::Tls10,
                "1.1" => TlsVersion::Tls11,
                "1.2" => TlsVersion::Tls12,
                "1.3" => TlsVersion::Tls13,
                _ => return Err(format!("expected 1.0, 1.1, 1.2 or 1.3, got `{value}`")),
            });
            Ok(())
        },
        render: |c| {
            c.tls
                .as_ref()
                .map(|t| match t.min_version {
                    TlsVersion::Tls10 => "1.0",
                    TlsVersion::Tls11 => "1.1",
                    TlsVersion::Tls12 => "1.2",
                    TlsVersion::Tls13 => "1.3",
                })
                .unwrap_or("")
                .to_string()
        },
    },
    Setting {
        key: "timeout",
        help: "inactivity timeout (RFC 1939: at least 10 minutes)",
        apply: |c, value, _| {
            c.timeout = parse_duration(value).and_then(nonzero)?;
            Ok(())
        },
        render: |c| render_duration(c.timeout),
    },
    Setting {
        key: "handshake_timeout",
        help: "time allowed for a TLS handshake",
        apply: |c, value, _| {
            c.handshake_timeout = parse_duration(value).and_then(nonzero)?;
            Ok(())
        },
        render: |c| render_duration(c.handshake_timeout),
    },
    Setting {
        key: "login_timeout",
        help: "whole time allowed before a successful login",
        apply: |c, value, _| {
            c.login_timeout = parse_duration(value).and_then(nonzero)?;
            Ok(())
        },
        render: |c| render_duration(c.login_timeout),
    },
    Setting {
        key: "send_timeout",
        help: "a client that reads nothing for this long is dropped",
        apply: |c, value, _| {
            c.send_timeout = parse_duration(value).and_then(nonzero)?;
            Ok(())
        },
        render: |c| render_duration(c.send_timeout),
    },
    Setting {
        key: "auth_failure_delay",
        help: "wait before each failed-login answer; base of the per-client penalty",
        apply: |c, value, _| {
            c.auth_failure_delay = parse_duration(value)?;
            Ok(())
        },
        render: |c| render_duration(c.auth_failure_delay),
    },
    Setting {
        key: "auth_penalty_max",
        help: "per-client penalty, doubling with recent failures",
        apply: |c, value, _| {
            c.auth_penalty_max = parse_duration(value)?;
            Ok(())
        },
        render: |c| render_duration(c.auth_penalty_max),
    },
    Setting {
        key: "max_auth_checks_per_client",
        help: "concurrent password checks per client",
        apply: |c, value, _| {
            c.max_auth_checks_per_client = parse_positive(value)?;
            Ok(())
        },
        render: |c| c.max_auth_checks_per_client.to_string(),
    },
    Setting {
        key: "max_auth_failures",
        help: "failed logins after which a connection is closed",
        apply: |c, value, _| {
            c.max_auth_failures = parse_positive(value)?;
            Ok(())
        },
        render: |c| c.max_auth_failures.to_string(),
    },
    Setting {
        key: "login_delay",
        help: "seconds advertised as LOGIN-DELAY (0: not advertised)",
        apply: |c, value, _| {
            let secs: u64 = parse_number(value)?;
            c.login_delay = (secs > 0).then_some(secs);
            Ok(())
        },
        render: |c| c.login_delay.unwrap_or(0).to_string(),
    },
    Setting {
        key: "max_connections",
        help: "standalone sessions at once",
        apply: |c, value, _| {
            c.max_connections = parse_positive(value)?;
            Ok(())
        },
        render: |c| c.max_connections.to_string(),
    },
    Setting {
        key: "max_connections_per_ip",
        help: "sessions at once per client (an IPv4 address, an IPv6 /64)",
        apply: |c, value, _| {
            c.max_connections_per_ip = parse_positive(value)?;
            Ok(())
        },
        render: |c| c.max_connections_per_ip.to_string(),
    },
    Setting {
        key: "client_prefix_ipv4",
        help: "IPv4 prefix length that makes one client",
        apply: |c, value, _| {
            c.client_prefix_ipv4 = parse_prefix(value, 32)?;
            Ok(())
        },
        render: |c| c.client_prefix_ipv4.to_string(),
    },
    Setting {
        key: "client_prefix_ipv6",
        help: "IPv6 prefix length that makes one client",
        apply: |c, value, _| {
            c.client_prefix_ipv6 = parse_prefix(value, 128)?;
            Ok(())
        },
        render: |c| c.client_prefix_ipv6.to_string(),
    },
    Setting {
        key: "hold_mda_locks",
        help: "hold the MDA locks for the whole session",
        apply: |c, value, _| {
            c.hold_mda_locks = parse_bool(value)?;
            Ok(())
        },
        render: |c| render_bool(c.hold_mda_locks),
    },
    Setting {
        key: "dotlock_method",
        help: "create dot-locks with O_EXCL (excl) or link(2) (link, for NFSv2)",
        apply: |c, value, _| {
            c.dotlock_use_link = match value {
                "excl" => false,
                "link" => true,
                _ => return Err(format!("expected excl or link, got `{value}`")),
            };
            Ok(())
        },
        render: |c| String::from(if c.dotlock_use_link { "link" } else { "excl" }),
    },
    Setting {
        key: "dotlock_stale_age",
        help: "age after which a foreign dot-lock of a dead owner is taken over",
        apply: |c, value, _| {
            c.dotlock_stale_age = parse_duration(value)?;
            Ok(())
        },
        render: |c| render_duration(c.dotlock_stale_age),
    },
    Setting {
        key: "lock_timeout",
        help: "longest wait for an MDA's locks before [IN-USE]",
        apply: |c, value, _| {
            c.lock_timeout = parse_duration(value)?;
            Ok(())
        },
        render: |c| render_duration(c.lock_timeout),
    },
    Setting {
        key: "index_cache_dir",
        help: "directory of mailbox indexes kept between sessions (empty: none)",
        apply: |c, value, _| {
            c.index_cache_dir = if value.is_empty() {
                None
            } else {
                Some(parse_path(value)?)
            };
            Ok(())
        },
        render: |c| render_path(c.index_cache_dir.as_deref()),
    },
    Setting {
        key: "syslog_facility",
        help: "syslog facility",
        apply: |c, value, _| {
            let name = value.to_ascii_lowercase();
            if syslog::Facility::from_str(&name).is_err() || name.starts_with("log_") {
                return Err(format!("unknown syslog facility `{value}`"));
            }
            c.syslog_facility = name;
            Ok(())
        },
        render: |c| c.syslog_facility.clone(),
    },
];

fn render_addrs(v: &[SocketAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn render_path(v: Option<&Path>) -> String {
    v.map(|p| p.display().to_string()).unwrap_or_default()
}

fn render_bool(b: bool) -> String {
    String::from(if b { "yes" } else { "no" })
}

fn render_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

fn render_plaintext(p: PlaintextAuth) -> String {
    String::from(match p {
        PlaintextAuth::Never => "never",
        PlaintextAuth::Tls => "tls",
        PlaintextAuth::Always => "always",
    })
}

/// The `plaintext_auth` a configuration gets when it does not set one.
fn default_plaintext_auth(have_tls: bool) -> PlaintextAuth {
    if have_tls {
        PlaintextAuth::Tls
    } else {
        PlaintextAuth::Always
    }
}

/// An address block, `ADDR/PREFIX` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    /// Whether `ip` lies in the block. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` is in any of `networks`.
pub fn trusted(networks: &[Network], ip: IpAddr) -> bool {
    networks.iter().any(|n| n.contains(ip))
}

fn parse_networks(value: &str) -> Result<Vec<Network>, String> {
    let mut out = Vec::new();
    for item in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let bad = || format!("`{item}` is not an address or ADDR/PREFIX network");
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(bad()),
            },
        };
        let net = Network { addr, prefix };
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

/// TLS keys arrive on separate lines; they are combined once the whole file was read.
#[derive(Default)]
struct TlsParts {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    min_version: Option<TlsVersion>,
}

/// `#` starts a comment at the beginning of a line or after whitespace, so a value such as a
/// path may still contain `#` in the middle.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn parse_addrs(value: &str) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for item in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let addr: SocketAddr = item
            .parse()
            .map_err(|_| format!("`{item}` is not an address:port (IPv6 as [addr]:port)"))?;
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

fn parse_path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(String::from("empty path"));
    }
    Ok(PathBuf::from(value))
}

/// User and group names (or numeric ids) as passwd(5)/group(5) allow them.
fn parse_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!("invalid user or group name `{value}`"))
    }
}

/// Checks the `%` escapes now, so a typo fails at startup rather than at the first login.
fn parse_template(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err(String::from("empty mailbox template"));
    }
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | 'h' | '%') => {}
                Some(other) => return Err(format!("unknown escape `%{other}` (use %u, %h, %%)")),
                None => return Err(String::from("template ends in a lone `%`")),
            }
        }
    }
    if !value.contains("%u") && !value.contains("%h") {
        return Err(String::from(
            "mailbox template must contain %u or %h (else all users share one mailbox)",
        ));
    }
    Ok(value.to_string())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got `{value}`")),
    }
}

fn parse_number<T: FromStr>(value: &str) -> Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a number, got `{value}`"));
    }
    value
        .parse()
        .map_err(|_| format!("number `{value}` is out of range"))
}

fn parse_positive<T: FromStr + Default + PartialEq>(value: &str) -> Result<T, String> {
    let n: T = parse_number(value)?;
    if n == T::default() {
        return Err(String::from("must be at least 1"));
    }
    Ok(n)
}

/// A prefix length between 1 and `max` bits.
fn parse_prefix(value: &str, max: u8) -> Result<u8, String> {
    match value.parse::<u8>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a prefix length from 1 to {max}, got `{value}`"
        )),
    }
}

fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err(String::from("must be longer than zero"))
    } else {
        Ok(d)
    }
}

/// Durations: `N` (seconds), `Nms`, `Ns`, `Nm`, `Nh`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let n: u64 = parse_number(number)
        .map_err(|_| format!("expected a duration like 30s, 10m, 500ms, got `{value}`"))?;
    let (factor, millis) = match unit {
        "" | "s" => (1, false),
        "ms" => (1, true),
        "m" => (60, false),
        "h" => (3600, false),
        _ => return Err(format!("unknown duration unit in `{value}` (ms, s, m, h)")),
    };
    let scaled = n
        .checked_mul(factor)
        .filter(|v| *v <= 366 * 24 * 3600 * 1000)
        .ok_or_else(|| format!("duration `{value}` is too long"))?;
    Ok(if millis {
        Duration::from_millis(scaled)
    } else {
        Duration::from_secs(scaled)
    })
}

/// The kernel's host name, for the greeting's APOP timestamp; `localhost` if unavailable.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| String::from("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.conf")
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_text_gives_defaults() {
        let c = parse("# nothing\n\n   \n").expect("parses");
        let d = Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.timeout, Duration::from_secs(600));
        assert_eq!(c.auth, AuthBackend::System);
        assert_eq!(c.mailbox, "/var/mail/%u");
        assert!(c.tls.is_none());
        assert!(c.path.is_none());
    }

    #[test]
    fn every_key_is_parsed() {
        let text = "\
listen = 127.0.0.1:1110, [::1]:1110
tls_listen = 127.0.0.1:1995
hostname = pop.example.org
auth = passwd-file
passwd_file = /etc/mboxpopd/passwd   # trailing comment
user = mail
group = mail
spool_group = mail
mailbox = /srv/mail/%u
mbox_format = mboxrd
uidl_format = popa3d
apop = yes
plaintext_auth = always
tls_cert = /etc/ssl/pop.pem
tls_key = /etc/ssl/pop.key
tls_min_version = 1.3
timeout = 15m
handshake_timeout = 5s
auth_failure_delay = 250ms
max_auth_failures = 5
login_delay = 300
max_connections = 50
max_connections_per_ip = 4
hold_mda_locks = on
dotlock_method = link
dotlock_stale_age = 1h
lock_timeout = 10
syslog_facility = LOCAL3
";
        let c = parse(text).expect("parses");
        assert_eq!(
            c.listen,
            vec![
                "127.0.0.1:1110".parse::<SocketAddr>().expect("addr"),
                "[::1]:1110".parse().expect("addr")
            ]
        );
        assert_eq!(c.tls_listen, vec!["127.0.0.1:1995".parse().expect("addr")]);
        assert_eq!(c.hostname, "pop.example.org");
        assert_eq!(c.auth, AuthBackend::PasswdFile);
        assert_eq!(c.passwd_file, Some(PathBuf::from("/etc/mboxpopd/passwd")));
        assert_eq!(c.run_user.as_deref(), Some("mail"));
        assert_eq!(c.run_group.as_deref(), Some("mail"));
        assert_eq!(c.spool_group.as_deref(), Some("mail"));
        assert_eq!(c.mailbox, "/srv/mail/%u");
        assert_eq!(c.mbox_format, MboxFormat::Mboxrd);
        assert_eq!(c.uidl_format, UidlFormat::Popa3d);
        assert!(c.apop);
        assert_eq!(c.plaintext_auth, PlaintextAuth::Always);
        assert_eq!(
            c.tls,
            Some(TlsConfig {
                cert: PathBuf::from("/etc/ssl/pop.pem"),
                key: PathBuf::from("/etc/ssl/pop.key"),
                min_version: TlsVersion::Tls13,
            })
        );
        assert_eq!(c.timeout, Duration::from_secs(900));
        assert_eq!(c.handshake_timeout, Duration::from_secs(5));
        assert_eq!(c.auth_failure_delay, Duration::from_millis(250));
        assert_eq!(c.max_auth_failures, 5);
        assert_eq!(c.login_delay, Some(300));
        assert_eq!(c.max_connections, 50);
        assert_eq!(c.max_connections_per_ip, 4);
        assert!(c.hold_mda_locks);
        assert!(c.dotlock_use_link);
        assert_eq!(c.dotlock_stale_age, Duration::from_secs(3600));
        assert_eq!(c.lock_timeout, Duration::from_secs(10));
        assert_eq!(c.syslog_facility, "local3");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn alternative_values() {
        let c = parse(
            "listen = 0.0.0.0:110 [::]:110\nauth = system\nmbox_format = mboxo\n\
             uidl_format = x-uidl\napop = false\nplaintext_auth = tls\nlogin_delay = 0\n\
             dotlock_method = excl\nspool_group =\n",
        )
        .expect("parses");
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.uidl_format, UidlFormat::XUidl);
        assert_eq!(c.login_delay, None);
        assert!(!c.dotlock_use_link);
        assert_eq!(c.spool_group, None);
        let c = parse("uidl_format = imap\nplaintext_auth = never\nlisten =\n").expect("ok");
        assert_eq!(c.uidl_format, UidlFormat::Imap);
        assert_eq!(c.plaintext_auth, PlaintextAuth::Never);
        assert!(c.listen.is_empty());
        let c = parse("uidl_format = dovecot-md5\n").expect("ok");
        assert_eq!(c.uidl_format, UidlFormat::DovecotMd5);
        let c = parse("uidl_format = native\nmailbox = %h/Mailbox\n").expect("ok");
        assert_eq!(c.uidl_format, UidlFormat::Native);
        assert_eq!(c.mailbox, "%h/Mailbox");
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("yes", true),
            ("TRUE", true),
            ("on", true),
            ("1", true),
            ("no", false),
            ("false", false),
            ("Off", false),
            ("0", false),
        ] {
            let c = parse(&format!("hold_mda_locks = {v}")).expect("bool");
            assert_eq!(c.hold_mda_locks, want, "{v}");
        }
        let e = parse_err("hold_mda_locks = maybe");
        assert_eq!(e.key.as_deref(), Some("hold_mda_locks"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("45ms"), Ok(Duration::from_millis(45)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "10 m",
            "-1",
            "1.5s",
            "10d",
            "99999999999999999999",
            "9999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_timeout_is_allowed_with_a_warning() {
        let c = parse("timeout = 2s").expect("parses");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert!(c.warnings().iter().any(|w| w.contains("RFC 1939")));
        assert_eq!(parse_err("timeout = 0").key.as_deref(), Some("timeout"));
        assert_eq!(
            parse_err("handshake_timeout = 0ms").key.as_deref(),
            Some("handshake_timeout")
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse_err("# c\n\nbogus_key = 1\n");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("bogus_key"));
        assert_eq!(e.to_string(), "test.conf:3: bogus_key: unknown key");

        let e = parse_err("listen = 127.0.0.1\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("listen")));
        assert!(e.to_string().starts_with("test.conf:1: listen: "), "{e}");

        let e = parse_err("just words\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), None));
    }

    #[test]
    fn bad_values_are_rejected() {
        for (line, key) in [
            ("listen = example.org:110", "listen"),
            ("tls_listen = 1.2.3.4", "tls_listen"),
            ("hostname = two words", "hostname"),
            ("auth = ldap", "auth"),
            ("passwd_file =", "passwd_file"),
            ("user = ro/ot", "user"),
            ("group = a b", "group"),
            ("spool_group = ma:il", "spool_group"),
            ("mailbox = /var/mail/%x", "mailbox"),
            ("mailbox = /var/mail/%", "mailbox"),
            ("mailbox = /var/mail/shared", "mailbox"),
            ("mailbox =", "mailbox"),
            ("mbox_format = maildir", "mbox_format"),
            ("uidl_format = md5", "uidl_format"),
            ("apop = perhaps", "apop"),
            ("plaintext_auth = sometimes", "plaintext_auth"),
            ("tls_min_version = 1.4", "tls_min_version"),
            ("timeout = soon", "timeout"),
            ("auth_failure_delay = -1s", "auth_failure_delay"),
            ("max_auth_failures = 0", "max_auth_failures"),
            ("max_auth_failures = three", "max_auth_failures"),
            ("login_delay = -5", "login_delay"),
            ("max_connections = 0", "max_connections"),
            ("max_connections_per_ip = 0", "max_connections_per_ip"),
            ("dotlock_method = flock", "dotlock_method"),
            ("dotlock_stale_age = 5y", "dotlock_stale_age"),
            ("lock_timeout = x", "lock_timeout"),
            ("syslog_facility = nowhere", "syslog_facility"),
            ("syslog_facility = log_mail", "syslog_facility"),
        ] {
            let e = parse_err(&format!("# first\n{line}\n"));
            assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
            assert_eq!(e.line, Some(2), "{line}");
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let e = parse_err("timeout = 1m\ntimeout = 2m\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("line 1"), "{e}");
    }

    #[test]
    fn cross_key_validation() {
        let e = parse_err("auth = passwd-file\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("auth")));
        assert!(e.message.contains("passwd_file"));

        let e = parse_err("tls_listen = [::]:995\n");
        assert_eq!(e.key.as_deref(), Some("tls_listen"));

        let e = parse_err("tls_cert = /a.pem\n");
        assert_eq!(e.key.as_deref(), Some("tls_cert"));
        let e = parse_err("\ntls_key = /a.key\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("tls_key")));
        let e = parse_err("tls_min_version = 1.2\n");
        assert_eq!(e.key.as_deref(), Some("tls_min_version"));
        let e = parse_err("group = mail\n");
        assert_eq!(e.key.as_deref(), Some("group"));

        let c = parse("tls_cert = /a.pem\ntls_key = /a.key\n").expect("ok");
        assert_eq!(c.tls.map(|t| t.min_version), Some(TlsVersion::Tls12));
    }

    #[test]
    fn comments_and_hash_in_values() {
        let c = parse("  # indented comment\nmailbox = /srv/#mail/%u # note\n").expect("ok");
        assert_eq!(c.mailbox, "/srv/#mail/%u");
    }

    #[test]
    fn load_remembers_path_and_reports_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.conf");
        std::fs::write(&path, "timeout = 30s\n").expect("write");
        let c = Config::load(&path).expect("loads");
        assert_eq!(c.path.as_deref(), Some(path.as_path()));
        assert_eq!(c.timeout, Duration::from_secs(30));

        let missing = dir.path().join("absent.conf");
        let e = Config::load(&missing).expect_err("missing");
        assert_eq!(e.line, None);
        assert!(e.to_string().starts_with(&missing.display().to_string()));
        assert!(e.message.contains("cannot read"));
    }

    #[test]
    fn warnings_for_unusual_setups() {
        let c = parse("plaintext_auth = never\n").expect("ok");
        assert!(c.warnings().iter().any(|w| w.contains("plaintext_auth")));
        let c = parse("apop = yes\n").expect("ok");
        assert!(c.warnings().iter().any(|w| w.contains("apop")));
        let c = parse("auth = pam\napop = yes\nuser = mail\n").expect("ok");
        assert!(c.warnings().iter().any(|w| w.contains("apop")));
        assert!(c.warnings().iter().any(|w| w.contains("user =")));
        let c = parse("auth = pam\nplaintext_auth = never\n").expect("ok");
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("no login can succeed")));
    }

    #[test]
    fn pam_settings() {
        let c = parse("").expect("ok");
        assert_eq!(c.pam_service, "mboxpopd");
        assert_eq!(c.pam_timeout, Duration::from_secs(30));
        assert_eq!(c.pam_max_concurrent, 4);
        let c =
            parse("auth = pam\npam_service = popa3d\npam_timeout = 5s\npam_max_concurrent = 1\n")
                .expect("ok");
        assert_eq!(c.auth, AuthBackend::Pam);
        assert_eq!(c.pam_service, "popa3d");
        assert_eq!(c.pam_timeout, Duration::from_secs(5));
        assert_eq!(c.pam_max_concurrent, 1);
        for bad in [
            "pam_service = ../shadow\n",
            "pam_service = \n",
            "pam_timeout = 0\n",
            "pam_max_concurrent = 0\n",
            "auth = pamm\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever the input, parsing returns (no panic), and errors point at a real line.
        #[test]
        fn parse_never_panics(text in "[ -~\n\t]{0,300}") {
            if let Err(e) = parse(&text) {
                if let Some(l) = e.line {
                    proptest::prop_assert!(l >= 1 && l <= text.lines().count().max(1));
                }
            }
        }

        #[test]
        fn durations_round_trip(n in 0u64..100_000, unit in 0usize..4) {
            let (suffix, secs) = [("", n), ("s", n), ("m", n * 60), ("h", n * 3600)][unit];
            proptest::prop_assert_eq!(
                parse_duration(&format!("{n}{suffix}")),
                Ok(Duration::from_secs(secs))
            );
        }
    }

    /// The table is the one list of keys: each is described in mboxpopd.conf(5) and in the
    /// example configuration, has a help line, and its default renders to text that parses
    /// back to the same value.
    #[test]
    fn every_setting_is_documented_and_round_trips() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let man = std::fs::read_to_string(root.join("man/mboxpopd.conf.5")).expect("man page");
        let example = std::fs::read_to_string(root.join("etc/mboxpopd.conf")).expect("example");
        let defaults = Config::default();
        for s in SETTINGS {
            assert!(!s.help.is_empty(), "{}: no help line", s.key);
            assert!(
                man.contains(&format!(".B {}\n", s.key)),
                "{} missing from mboxpopd.conf(5)",
                s.key
            );
            assert!(
                example.contains(&format!("#{} =", s.key))
                    || example.contains(&format!("{} =", s.key)),
                "{} missing from etc/mboxpopd.conf",
                s.key
            );
            let text = (s.render)(&defaults);
            if text.is_empty() {
                continue;
            }
            let line = format!("{} = {text}\n", s.key);
            match Config::parse(&line, "test") {
                Ok(back) => assert_eq!((s.render)(&back), text, "{}", s.key),
                // Keys that need a companion (tls_min_version needs a certificate) say so.
                Err(e) => assert!(e.message.contains("needs"), "{line}: {e}"),
            }
        }
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key appears twice");
    }

    #[test]
    fn no_file_and_an_empty_file_are_the_same() {
        let empty = parse("").expect("ok");
        let none = Config::default();
        for setting in SETTINGS {
            assert_eq!(
                (setting.render)(&empty),
                (setting.render)(&none),
                "{}",
                setting.key
            );
        }
        assert_eq!(empty.warnings(), none.warnings());
        assert!(none.non_defaults().is_empty(), "{:?}", none.non_defaults());
        assert!(empty.non_defaults().is_empty());
    }

    #[test]
    fn non_defaults_round_trip() {
        let text = "listen = 127.0.0.1:1110\nauth = passwd-file\npasswd_file = /etc/p\n\
                    timeout = 15m\nauth_failure_delay = 250ms\ntls_cert = /c\ntls_key = /k\n\
                    plaintext_auth = always\nproxy_listen = 10.0.0.5:110\n\
                    proxy_trusted_networks = 10.0.0.0/24 ::1\n";
        let c = parse(text).expect("ok");
        let lines = c.non_defaults();
        assert!(lines.contains(&String::from("timeout = 900s")), "{lines:?}");
        assert!(
            lines.contains(&String::from("plaintext_auth = always")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&String::from(
                "proxy_trusted_networks = 10.0.0.0/24 ::1/128"
            )),
            "{lines:?}"
        );
        let again = parse(&lines.join("\n")).expect("reparses");
        assert_eq!(again.non_defaults(), lines);
        // With TLS, `tls` is the default and is not listed.
        let c = parse("tls_cert = /c\ntls_key = /k\n").expect("ok");
        assert!(!c
            .non_defaults()
            .iter()
            .any(|l| l.starts_with("plaintext_auth")));
    }

    #[test]
    fn proxy_keys() {
        let c = parse(
            "proxy_listen = 127.0.0.1:1110\nproxy_trusted_networks = 10.1.0.0/16, 127.0.0.1 ::1\n",
        )
        .expect("ok");
        assert_eq!(
            c.proxy_listen,
            vec!["127.0.0.1:1110".parse().expect("addr")]
        );
        let nets = &c.proxy_trusted_networks;
        assert!(trusted(nets, "10.1.200.3".parse().expect("ip")));
        assert!(!trusted(nets, "10.2.0.1".parse().expect("ip")));
        assert!(trusted(nets, "::ffff:127.0.0.1".parse().expect("ip")));
        assert!(trusted(nets, "::1".parse().expect("ip")));
        assert!(!trusted(nets, "127.0.0.2".parse().expect("ip")));
        assert!(parse("proxy_trusted_networks = 0.0.0.0/0\n")
            .expect("ok")
            .proxy_trusted_networks[0]
            .contains("203.0.113.1".parse().expect("ip")));
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "host.example",
            "10.0.0.0/+8",
        ] {
            let e = parse_err(&format!("proxy_trusted_networks = {bad}\n"));
            assert_eq!(e.key.as_deref(), Some("proxy_trusted_networks"), "{bad}");
        }
        let e = parse_err("proxy_listen = 127.0.0.1:1110\n");
        assert_eq!(e.key.as_deref(), Some("proxy_listen"));
        let e = parse_err("proxy_tls_listen = 127.0.0.1:1995\nproxy_trusted_networks = ::1\n");
        assert_eq!(e.key.as_deref(), Some("proxy_tls_listen"));
    }

    #[test]
    fn plaintext_default_depends_on_tls() {
        let c = parse("").expect("ok");
        assert_eq!(c.plaintext_auth, PlaintextAuth::Always);
        assert!(c.warnings().iter().any(|w| w.contains("cleartext")));
        let c = parse("plaintext_auth = tls\n").expect("ok");
        assert_eq!(c.plaintext_auth, PlaintextAuth::Tls);
        let c = parse("tls_cert = /etc/ssl/pop.pem\ntls_key = /etc/ssl/pop.key\n").expect("ok");
        assert_eq!(c.plaintext_auth, PlaintextAuth::Tls);
    }
}
