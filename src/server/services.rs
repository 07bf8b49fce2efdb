//! The production `protocol::Services`: the configured auth backend, the mailbox template and
//! the mbox storage, plus the privilege switch before the spool is touched. Also the
//! [`Runtime`]: what a running server has loaded (config, auth backend, TLS context), swapped
//! as a whole on SIGHUP.

use std::cell::Cell;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::{self, Account, AuthError, Authenticator};
use crate::config::{trusted, AuthBackend, Config};
use crate::protocol::session::{new_timestamp, SessionParams};
use crate::protocol::{Maildrop, Services};
use crate::server::clients::{client_key, CheckTimedOut, ClientTable, Limits};
use crate::server::connection::{ConnectionParams, LoginWatch};
use crate::storage::disk_cache::{CacheDir, Slot};
use crate::storage::mailbox::Mailbox;
use crate::storage::path::expand_mailbox_template;
use crate::storage::StoreError;
use crate::sys::credentials;
use crate::transport::tls::TlsContext;

/// What the server has loaded from its configuration.
pub struct Runtime {
    pub config: Arc<Config>,
    pub auth: Arc<dyn Authenticator>,
    pub tls: Option<TlsContext>,
    /// The file-system identity of session threads before login (nobody/nogroup).
    pub prelogin_ids: (u32, u32),
    /// The checked on-disk index cache directory ([`Runtime::open_index_cache`]).
    pub index_cache: Option<Arc<CacheDir>>,
}

/// The unprivileged account session threads use before login: `nobody` and its group, or
/// the traditional 65534 where the account does not exist.
fn prelogin_ids() -> (u32, u32) {
    credentials::lookup_user("nobody")
        .map(|(uid, gid, _)| (uid, gid))
        .unwrap_or((65534, 65534))
}

/// A startup or reload failure, already phrased for the admin.
#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

impl Runtime {
    /// Open the auth backend and load the TLS files. Runs before privileges are dropped: the
    /// TLS key and /etc/shadow are normally readable by root only.
    pub fn load(config: Config) -> Result<Runtime, LoadError> {
        let auth = auth::open(&config.auth_settings()).map_err(LoadError)?;
        let tls = match &config.tls {
            Some(tc) => Some(TlsContext::load(tc).map_err(|e| LoadError(e.to_string()))?),
            None => None,
        };
        Ok(Runtime {
            config: Arc::new(config),
            auth: Arc::from(auth),
            tls,
            prelogin_ids: prelogin_ids(),
            index_cache: None,
        })
    }

    /// Check (and create if missing) `index_cache_dir` as the identity the server keeps after
    /// start-up (root, or `user =`). An unusable directory is a warning, not an error: the
    /// server runs without the disk cache.
    pub fn open_index_cache(&mut self) {
        let Some(path) = &self.config.index_cache_dir else {
            return;
        };
        match CacheDir::prepare(path) {
            Ok(dir) => self.index_cache = Some(Arc::new(dir)),
            Err(e) => log::warn!(
                "index_cache_dir {}: {e}; running without the on-disk index cache",
                path.display()
            ),
        }
    }

    /// Remove the index cache files no login will use again ([`CacheDir::sweep`]), in a
    /// thread of its own so that start-up does not wait for it.
    pub fn sweep_index_cache(&self) {
        let Some(dir) = self.index_cache.clone() else {
            return;
        };
        let run = move || match dir.sweep() {
            Ok(s) if s.gone + s.unusable > 0 => log::info!(
                "index cache {}: removed {} files of mailboxes that no longer exist and {} \
                 that no login can use (other versions, damaged); kept {}",
                dir.path().display(),
                s.gone,
                s.unusable,
                s.kept
            ),
            Ok(s) => log::debug!(
                "index cache {}: kept {} files",
                dir.path().display(),
                s.kept
            ),
            Err(e) => log::warn!("index cache {}: cannot sweep: {e}", dir.path().display()),
        };
        if let Err(e) = std::thread::Builder::new()
            .name(String::from("cache sweep"))
            .spawn(run)
        {
            log::error!("cannot start the index cache sweep: {e}");
        }
    }

    /// SIGHUP: read the config file again (if there is one), reopen the auth backend and
    /// reload the certificate. Sockets and process credentials cannot change without a
    /// restart; such changes are logged and otherwise ignored.
    pub fn reload(&self) -> Result<Runtime, LoadError> {
        let config = match &self.config.path {
            Some(path) => Config::load(path).map_err(|e| LoadError(e.to_string()))?,
            None => (*self.config).clone(),
        };
        let old = &self.config;
        if config.listen != old.listen
            || config.tls_listen != old.tls_listen
            || config.proxy_listen != old.proxy_listen
            || config.proxy_tls_listen != old.proxy_tls_listen
        {
            log::warn!("listener address changes take effect after a restart");
        }
        if config.run_user != old.run_user || config.run_group != old.run_group {
            log::warn!("user/group changes take effect after a restart");
        }
        if config.index_cache_dir != old.index_cache_dir {
            log::warn!("index_cache_dir changes take effect after a restart");
        }
        let auth = auth::open(&config.auth_settings()).map_err(LoadError)?;
        let tls = match (&self.tls, &config.tls) {
            (Some(ctx), Some(tc)) => {
                ctx.reload(tc).map_err(|e| LoadError(e.to_string()))?;
                Some(ctx.clone())
            }
            (None, Some(tc)) => Some(TlsContext::load(tc).map_err(|e| LoadError(e.to_string()))?),
            (_, None) => None,
        };
        for w in config.warnings() {
            log::warn!("{w}");
        }
        Ok(Runtime {
            config: Arc::new(config),
            auth: Arc::from(auth),
            tls,
            prelogin_ids: self.prelogin_ids,
            index_cache: self.index_cache.clone(),
        })
    }

    /// The per-connection session settings.
    pub fn session_params(
        &self,
        peer: Option<SocketAddr>,
        implicit_tls: bool,
        services: &dyn Services,
    ) -> SessionParams {
        let c = &self.config;
        // curl and others switch to APOP whenever the greeting carries a timestamp, so it is
        // only sent when APOP can actually succeed.
        let apop_timestamp =
            (c.apop && services.has_plaintext_secrets()).then(|| new_timestamp(&c.hostname));
        SessionParams {
            hostname: c.hostname.clone(),
            implementation: format!("mboxpopd {}", env!("CARGO_PKG_VERSION")),
            apop_timestamp,
            tls_active: implicit_tls,
            stls_available: self.tls.is_some() && !implicit_tls,
            plaintext_auth: c.plaintext_auth,
            peer_is_loopback: peer.is_none_or(|p| p.ip().to_canonical().is_loopback()),
            // Only a trusted proxy may name the client; a client behind a PROXY header is
            // judged by its own address here, so it cannot claim another.
            xclient: peer.is_some_and(|p| trusted(&c.proxy_trusted_networks, p.ip())),
            peer: match peer {
                Some(p) => p.ip().to_canonical().to_string(),
                None => String::from("local"),
            },
            login_delay: c.login_delay,
            max_auth_failures: c.max_auth_failures,
            auth_failure_delay: c.auth_failure_delay,
        }
    }

    pub fn connection_params(
        &self,
        peer: Option<SocketAddr>,
        implicit_tls: bool,
        login: Arc<LoginWatch>,
    ) -> ConnectionParams {
        ConnectionParams {
            peer,
            timeout: self.config.timeout,
            send_timeout: self.config.send_timeout,
            login,
            handshake_timeout: self.config.handshake_timeout,
            tls: self.tls.clone(),
            implicit_tls,
        }
    }
}

/// How a session takes the user's credentials before it touches the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeMode {
    /// Standalone daemon: only the session's thread changes credentials.
    Thread,
    /// inetd: the process serves one session and drops for good.
    Process,
}

/// Moves a connection's slot to another client (see [`MboxServices::on_client_change`]).
pub type ClientChange = Box<dyn Fn(IpAddr) -> bool>;

pub struct MboxServices {
    runtime: Arc<Runtime>,
    mode: PrivilegeMode,
    /// Set once this connection's thread (or process) took a user's identity; it cannot serve
    /// anyone else afterwards.
    bound: Cell<bool>,
    /// Failure penalties and password checks in flight, shared by all connections.
    clients: Arc<ClientTable>,
    /// This connection's client (its address masked to the configured prefix); XCLIENT may
    /// change it.
    client: Cell<IpAddr>,
    /// The client's own address (PAM_RHOST); None for inetd over pipes. XCLIENT may change it.
    peer: Cell<Option<IpAddr>>,
    /// Told when XCLIENT names another client; refuses when that client is at its limit.
    client_change: Option<ClientChange>,
    /// No password check starts after this instant.
    login_deadline: Instant,
}

impl MboxServices {
    pub fn new(
        runtime: Arc<Runtime>,
        mode: PrivilegeMode,
        clients: Arc<ClientTable>,
        peer: Option<SocketAddr>,
        login_deadline: Instant,
    ) -> Self {
        let c = &runtime.config;
        // inetd over pipes: all local callers count as one client.
        let ip = peer.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |p| p.ip());
        let client = client_key(ip, c.client_prefix_ipv4, c.client_prefix_ipv6);
        MboxServices {
            runtime,
            mode,
            bound: Cell::new(false),
            clients,
            client: Cell::new(client),
            peer: Cell::new(peer.map(|p| p.ip())),
            client_change: None,
            login_deadline,
        }
    }

    /// Where the connection limits learn that XCLIENT moved the connection to a new client.
    pub fn on_client_change(&mut self, hook: ClientChange) {
        self.client_change = Some(hook);
    }

    /// The spool group lets the session create dot-locks in a `root:mail 2775` spool.
    fn spool_groups(&self) -> Vec<u32> {
        self.runtime
            .config
            .spool_group
            .as_deref()
            .and_then(credentials::lookup_group)
            .into_iter()
            .collect()
    }

    fn limits(&self) -> Limits {
        let c = &self.runtime.config;
        Limits {
            penalty_base: c.auth_failure_delay,
            penalty_max: c.auth_penalty_max,
            max_checks: c.max_auth_checks_per_client,
        }
    }

    /// Wait for this client's penalty and a free check slot, then run `check` with access to
    /// root's files (the password check alone reads /etc/shadow or a root-only passwd-file).
    fn checked<T>(&self, check: impl FnOnce() -> Result<T, AuthError>) -> Result<T, AuthError> {
        let _slot = self
            .clients
            .begin_check(self.client.get(), &self.limits(), self.login_deadline)
            .map_err(|CheckTimedOut| {
                AuthError::Temporary(String::from(
                    "no password check slot before the login deadline",
                ))
            })?;
        credentials::with_root_files(check)
    }

    /// Before the greeting: when running as root, the connection's thread keeps uid 0 (so no
    /// local user can signal it) but touches files only as the unprivileged pre-login account
    /// and holds only the capabilities the login needs. A failure here ends the connection.
    pub fn restrict_before_login(&self) -> Result<(), String> {
        if !credentials::can_switch_identity() {
            return Ok(());
        }
        let (uid, gid) = self.runtime.prelogin_ids;
        credentials::restrict_thread_before_login(uid, gid)
            .map_err(|e| format!("cannot restrict the session before login: {e}"))
    }

    /// Become the account's user when running as root. Returns the uid switched to.
    ///
    /// System accounts always carry a uid and are always switched to, so a mailbox is never
    /// opened as root for them; root's own mailbox is refused. Virtual users without a uid
    /// run as the daemon: normally `user =` (the process dropped after binding), as root
    /// only when the admin configured no `user` (warned about at startup).
    fn take_credentials(&self, account: &Account) -> Result<Option<u32>, StoreError> {
        if !credentials::can_switch_identity() {
            return Ok(None);
        }
        let uid = match account.uid {
            Some(0) => {
                return Err(StoreError::Permanent(format!(
                    "refusing to serve the mailbox of {} (uid 0)",
                    account.name
                )))
            }
            Some(uid) => uid,
            None if self.runtime.config.auth != AuthBackend::PasswdFile => {
                return Err(StoreError::Permanent(format!(
                    "system account {} has no uid",
                    account.name
                )))
            }
            None => {
                // Virtual users with neither a uid nor `user =`: root's file access (owner and
                // group bits only), still without any capability.
                self.bound.set(true);
                credentials::bind_thread_to(0, 0, &self.spool_groups())
                    .map_err(|e| StoreError::Temporary(format!("cannot switch to root: {e}")))?;
                return Ok(None);
            }
        };
        let gid = account.gid.unwrap_or(uid);
        let groups = self.spool_groups();
        // From here on this connection belongs to the user, whatever happens next.
        self.bound.set(true);
        let result = match self.mode {
            PrivilegeMode::Thread => credentials::bind_thread_to(uid, gid, &groups),
            PrivilegeMode::Process => credentials::drop_process_to(uid, gid, &groups),
        };
        result.map_err(|e| StoreError::Temporary(format!("cannot switch to uid {uid}: {e}")))?;
        Ok(Some(uid))
    }
}

impl MboxServices {
    fn index_cache_slot(&self, mailbox: &std::path::Path) -> Option<Slot> {
        let dir = self.runtime.index_cache.as_ref()?;
        let c = &self.runtime.config;
        credentials::with_root_files(|| dir.open(mailbox, c.mbox_format, c.uidl_format))
            .map_err(|e| log::warn!("{}: index cache file not usable: {e}", mailbox.display()))
            .ok()
    }
}

impl Services for MboxServices {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        self.checked(|| {
            self.runtime
                .auth
                .verify_from(user, password, self.peer.get())
        })
    }

    fn plaintext_secret(&self, user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError> {
        self.checked(|| self.runtime.auth.plaintext_secret(user))
    }

    fn auth_outcome(&self, success: bool) {
        let client = self.client.get();
        if success {
            self.clients.succeeded(client);
        } else {
            let failures = self.clients.failed(client);
            log::debug!("client {client} has {failures} recent failure(s)");
        }
    }

    fn set_client(&self, ip: IpAddr) -> bool {
        if let Some(hook) = &self.client_change {
            if !hook(ip) {
                return false;
            }
        }
        let c = &self.runtime.config;
        self.client
            .set(client_key(ip, c.client_prefix_ipv4, c.client_prefix_ipv6));
        self.peer.set(Some(ip));
        true
    }

    fn bound_to_user(&self) -> bool {
        self.bound.get()
    }

    fn has_plaintext_secrets(&self) -> bool {
        self.runtime.auth.has_plaintext_secrets()
    }

    fn open_maildrop(&self, account: &Account) -> Result<Box<dyn Maildrop>, StoreError> {
        let path = expand_mailbox_template(&self.runtime.config.mailbox, account)?;
        // The cache file is opened while the session still has the server's file access: the
        // user can neither read nor write it, only this session through its descriptor.
        let slot = self.index_cache_slot(&path);
        // After a switch the mailbox must belong to the user (the storage layer checks the
        // opened file, so a swapped-in symlink or foreign file cannot slip through).
        let owner = self.take_credentials(account)?;
        let opts = self.runtime.config.mailbox_options(owner);
        let mailbox = Mailbox::open_cached(&path, &opts, slot)?;
        Ok(Box::new(mailbox))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    fn setup(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        fs::write(&passwd, "alice:{PLAIN}secret\n").expect("passwd");
        fs::create_dir(dir.path().join("spool")).expect("spool");
        let conf = dir.path().join("m.conf");
        fs::write(
            &conf,
            format!(
                "auth = passwd-file\npasswd_file = {}\nmailbox = {}/spool/%u\n{extra}",
                passwd.display(),
                dir.path().display()
            ),
        )
        .expect("conf");
        (dir, conf)
    }

    fn services_for(rt: Arc<Runtime>) -> MboxServices {
        let deadline = Instant::now() + Duration::from_secs(60);
        MboxServices::new(rt, PrivilegeMode::Thread, Arc::default(), None, deadline)
    }

    fn runtime(conf: &std::path::Path) -> Runtime {
        Runtime::load(Config::load(conf).expect("config")).expect("runtime")
    }

    #[test]
    fn session_params_follow_config_and_peer() {
        let (_dir, conf) = setup("apop = yes\nlogin_delay = 60\n");
        let rt = Arc::new(runtime(&conf));
        let services = services_for(Arc::clone(&rt));
        let local = rt.session_params(None, false, &services);
        assert!(local.peer_is_loopback);
        assert_eq!(local.peer, "local");
        assert_eq!(local.login_delay, Some(60));
        assert!(!local.stls_available, "no TLS configured");
        // {PLAIN} secrets exist, so APOP is usable and the greeting carries a timestamp.
        let ts = local.apop_timestamp.expect("timestamp");
        assert!(
            ts.starts_with('<') && ts.ends_with('>') && ts.contains('@'),
            "{ts}"
        );
        let remote = rt.session_params(
            Some("10.1.2.3:4567".parse().expect("addr")),
            false,
            &services,
        );
        assert!(!remote.peer_is_loopback);
        assert_eq!(remote.peer, "10.1.2.3");
        let mapped = rt.session_params(
            Some("[::ffff:127.0.0.1]:1".parse().expect("addr")),
            false,
            &services,
        );
        assert!(mapped.peer_is_loopback);
        assert_eq!(mapped.peer, "127.0.0.1");
        assert_ne!(
            rt.session_params(None, false, &services).apop_timestamp,
            Some(ts),
            "a new timestamp per connection"
        );
    }

    #[test]
    fn no_apop_timestamp_without_apop() {
        let (_dir, conf) = setup("");
        let rt = Arc::new(runtime(&conf));
        let services = services_for(Arc::clone(&rt));
        assert_eq!(
            rt.session_params(None, false, &services).apop_timestamp,
            None
        );
    }

    #[test]
    fn reload_reads_the_file_again_and_keeps_nothing_on_error() {
        let (dir, conf) = setup("");
        let rt = runtime(&conf);
        assert_eq!(rt.config.timeout, Duration::from_secs(600));
        let text = fs::read_to_string(&conf).expect("read");
        fs::write(&conf, format!("{text}timeout = 42s\n")).expect("write");
        let new = rt.reload().expect("reload");
        assert_eq!(new.config.timeout, Duration::from_secs(42));
        fs::write(&conf, "timeout = later\n").expect("write");
        let err = rt.reload().err().expect("broken config refused");
        assert!(err.to_string().contains("timeout"), "{err}");
        drop(dir);
    }

    #[test]
    fn open_maildrop_serves_the_templated_mailbox() {
        let (dir, conf) = setup("");
        fs::write(
            dir.path().join("spool/alice"),
            "From a@b Thu Nov 26 03:32:14 2026\nSubject: x\n\nhello\n",
        )
        .expect("mbox");
        let rt = Arc::new(runtime(&conf));
        let services = services_for(rt);
        let account = services.authenticate("alice", b"secret").expect("login");
        let maildrop = services.open_maildrop(&account).expect("open");
        assert_eq!(maildrop.messages().len(), 1);
        assert!(services.authenticate("alice", b"wrong").is_err());
    }
}
