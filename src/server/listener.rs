//! Standalone mode (`-d`): blocking listeners, one small-stack OS thread per connection,
//! global and per-IP connection limits, SIGTERM shutdown and SIGHUP reload.
//!
//! On the proxy listeners (`proxy_listen`, `proxy_tls_listen`) a connection is accepted only
//! from `proxy_trusted_networks`, counts against `max_connections` at once, and against its
//! client's `max_connections_per_ip` only once its PROXY header has named the client: the
//! socket's peer is the proxy, whose connections carry everyone's sessions. The header must
//! arrive within [`PROXY_HEADER_TIMEOUT`], so untrusted or silent peers hold no thread long.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{self, Config};
use crate::server::clients::{client_key, ClientTable};
use crate::server::connection::{self, LoginWatch};
use crate::server::services::{MboxServices, PrivilegeMode, Runtime};
use crate::server::signals::{self, Event, Signals};
use crate::transport::proxy::{self, Origin};
use crate::transport::stream::Stream;

/// How long a proxy has to send its header after connecting. HAProxy sends it with the
/// connection's first bytes; a few seconds cover a loaded proxy without letting a silent
/// connection hold a session thread.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack size of session threads. Sessions keep their big buffers on the heap; the stack
/// holds the protocol code, password hashing and the OpenSSL handshake. Measured on a debug
/// build: a full session over TLS (yescrypt, bcrypt and sha512-crypt logins, RETR, DELE, the
/// QUIT commit) runs in 128 KiB and overflows 64 KiB; this leaves twice the measured need.
pub const SESSION_STACK: usize = 256 * 1024;

/// How long SIGTERM waits for sessions to notice (a commit in progress is allowed to finish).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The reply to a connection over a limit (RFC 3206 `SYS/TEMP`: try again later).
const TOO_MANY: &[u8] = b"-ERR [SYS/TEMP] too many connections, try again later\r\n";

/// A bound listening socket.
#[derive(Debug)]
pub struct Bound {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    /// Implicit TLS (the `tls_listen` sockets).
    pub tls: bool,
    /// A PROXY protocol header precedes everything (the `proxy_*listen` sockets).
    pub proxy: bool,
}

/// Every listener the configuration asks for.
pub fn bind_config(c: &Config) -> Result<Vec<Bound>, String> {
    let mut wanted = Vec::new();
    wanted.extend(c.listen.iter().map(|a| (*a, false, false)));
    wanted.extend(c.tls_listen.iter().map(|a| (*a, true, false)));
    wanted.extend(c.proxy_listen.iter().map(|a| (*a, false, true)));
    wanted.extend(c.proxy_tls_listen.iter().map(|a| (*a, true, true)));
    bind_listeners(wanted)
}

/// Bind every `listen` and `tls_listen` address.
///
/// `[::]:p` is bound before `0.0.0.0:p`: on Linux the IPv6 wildcard socket is dual-stack
/// unless `net.ipv6.bindv6only` is set, and then already receives IPv4 connections, so the
/// IPv4 wildcard failing with EADDRINUSE is expected and tolerated.
pub fn bind(plain: &[SocketAddr], tls: &[SocketAddr]) -> Result<Vec<Bound>, String> {
    let wanted = plain
        .iter()
        .map(|a| (*a, false, false))
        .chain(tls.iter().map(|a| (*a, true, false)))
        .collect();
    bind_listeners(wanted)
}

/// Bind `(address, tls, proxy)` triples.
fn bind_listeners(mut wanted: Vec<(SocketAddr, bool, bool)>) -> Result<Vec<Bound>, String> {
    if wanted.is_empty() {
        return Err(String::from(
            "no listen, tls_listen, proxy_listen or proxy_tls_listen address configured",
        ));
    }
    // IPv6 wildcards first (stable sort keeps the configured order otherwise).
    wanted.sort_by_key(|(a, _, _)| !(a.is_ipv6() && a.ip().is_unspecified()));
    let mut bound: Vec<Bound> = Vec::new();
    for (addr, is_tls, is_proxy) in wanted {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                if let Err(e) = crate::sys::socket::raise_backlog(&listener, 4096) {
                    log::warn!("{addr}: cannot raise the listen backlog: {e}");
                }
                let local = listener.local_addr().unwrap_or(addr);
                bound.push(Bound {
                    listener,
                    addr: local,
                    tls: is_tls,
                    proxy: is_proxy,
                });
            }
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && covered_by_dual_stack(addr, is_tls, is_proxy, &bound) =>
            {
                log::debug!(
                    "{addr}: served by the dual-stack [::]:{} socket",
                    addr.port()
                );
            }
            Err(e) => return Err(format!("cannot listen on {addr}: {e}")),
        }
    }
    Ok(bound)
}

fn covered_by_dual_stack(addr: SocketAddr, is_tls: bool, is_proxy: bool, bound: &[Bound]) -> bool {
    addr.is_ipv4()
        && addr.ip().is_unspecified()
        && bound.iter().any(|b| {
            b.tls == is_tls
                && b.proxy == is_proxy
                && b.addr.is_ipv6()
                && b.addr.ip().is_unspecified()
                && b.addr.port() == addr.port()
        })
}

/// Connections in progress: counts for the limits, and socket handles for shutdown.
/// One connection in progress.
struct Entry {
    login: Arc<LoginWatch>,
}

#[derive(Default)]
struct Registry {
    total: usize,
    /// Connections per client (address masked to the configured prefix).
    per_client: HashMap<IpAddr, usize>,
    connections: HashMap<u64, Entry>,
    next_id: u64,
}

struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    registry: Mutex<Registry>,
    clients: Arc<ClientTable>,
    /// Signalled whenever a connection ends.
    ended: Condvar,
}

impl Shared {
    fn runtime(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panicking session thread cannot leave the registry half-updated (each update is
        // a few integer operations), so a poisoned lock is still consistent.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a connection slot, or refuse when a limit is reached. `client` is `None` while
    /// the client is not known yet (a PROXY header to come): only the global limit applies
    /// until [`Slot::assign`] names it.
    fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        stream: &Arc<TcpStream>,
    ) -> Option<(Arc<Slot>, Arc<LoginWatch>)> {
        let config = self.runtime().config.clone();
        let client =
            ip.map(|ip| client_key(ip, config.client_prefix_ipv4, config.client_prefix_ipv6));
        let mut reg = self.registry();
        let from_client = client
            .and_then(|c| reg.per_client.get(&c).copied())
            .unwrap_or(0);
        if reg.total >= config.max_connections || from_client >= config.max_connections_per_ip {
            return None;
        }
        reg.total += 1;
        if let Some(c) = client {
            *reg.per_client.entry(c).or_insert(0) += 1;
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let login = Arc::new(LoginWatch::new(
            config.login_timeout,
            Some(Arc::clone(stream)),
        ));
        reg.connections.insert(
            id,
            Entry {
                login: Arc::clone(&login),
            },
        );
        let slot = Arc::new(Slot {
            shared: Arc::clone(self),
            client: Mutex::new(client),
            id,
        });
        Some((slot, login))
    }
}

/// A held connection slot; dropping it (also while a session thread unwinds) frees it.
struct Slot {
    shared: Arc<Shared>,
    /// The client it counts for, once known.
    client: Mutex<Option<IpAddr>>,
    id: u64,
}

impl Slot {
    /// Count the slot for the client at `ip` from now on (after a PROXY header or XCLIENT
    /// named it), or refuse when that client is at its limit.
    fn assign(&self, ip: IpAddr) -> bool {
        let config = self.shared.runtime().config.clone();
        let key = client_key(ip, config.client_prefix_ipv4, config.client_prefix_ipv6);
        let mut reg = self.shared.registry();
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if *client == Some(key) {
            return true;
        }
        if reg.per_client.get(&key).copied().unwrap_or(0) >= config.max_connections_per_ip {
            return false;
        }
        if let Some(old) = client.take() {
            release_client(&mut reg, old);
        }
        *reg.per_client.entry(key).or_insert(0) += 1;
        *client = Some(key);
        true
    }
}

fn release_client(reg: &mut Registry, client: IpAddr) {
    if let Some(n) = reg.per_client.get_mut(&client) {
        *n -= 1;
        if *n == 0 {
            reg.per_client.remove(&client);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = self.shared.registry();
        reg.total = reg.total.saturating_sub(1);
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(c) = client {
            release_client(&mut reg, c);
        }
        reg.connections.remove(&self.id);
        drop(reg);
        self.shared.ended.notify_all();
    }
}

/// Serve until SIGTERM/SIGINT. `signals` must have been installed before any thread started.
pub fn run(bound: Vec<Bound>, runtime: Runtime, mut signals: Signals) -> io::Result<()> {
    let shared = Arc::new(Shared {
        runtime: RwLock::new(Arc::new(runtime)),
        registry: Mutex::new(Registry::default()),
        clients: Arc::new(ClientTable::default()),
        ended: Condvar::new(),
    });
    {
        let shared = Arc::clone(&shared);
        thread::Builder::new()
            .name(String::from("login deadlines"))
            .spawn(move || enforce_login_deadlines(&shared))?;
    }
    log_descriptor_limit(shared.runtime().config.max_connections);
    for b in bound {
        let shared = Arc::clone(&shared);
        log::info!(
            "listening on {}{}{}",
            b.addr,
            if b.proxy { " (PROXY protocol)" } else { "" },
            if b.tls { " (TLS)" } else { "" }
        );
        thread::Builder::new()
            .name(format!("accept {}", b.addr))
            .spawn(move || accept_loop(b, shared))?;
    }
    // Until Event::Terminate.
    while let Event::Reload = signals.wait()? {
        reload(&shared);
    }
    shut_down(&shared);
    Ok(())
}

/// Raise the descriptor limit as far as the hard limit allows, and say what that gives: one
/// greppable line, and a warning when `max_connections` logged-in sessions would not fit.
fn log_descriptor_limit(max_connections: usize) {
    use crate::sys::limits::{raise_open_files, FILES_PER_SESSION, FILES_RESERVED};
    match raise_open_files() {
        Ok((soft, hard)) => {
            let fit = soft.saturating_sub(FILES_RESERVED) / FILES_PER_SESSION;
            log::info!("open file limit: {soft} (hard {hard}), room for {fit} logged-in sessions; max_connections={max_connections}");
            if (max_connections as u64) > fit {
                log::warn!(
                    "max_connections={max_connections} exceeds the {fit} sessions the open file limit ({soft}) allows; raise LimitNOFILE (systemd) or ulimit -Hn"
                );
            }
        }
        Err(e) => log::warn!("cannot raise the open file limit: {e}"),
    }
}

/// Cut connections that have not logged in by their deadline, whatever they are doing (a
/// trickled line, a stalled handshake, a blocked write).
fn enforce_login_deadlines(shared: &Shared) {
    loop {
        thread::sleep(Duration::from_millis(500));
        let now = Instant::now();
        let reg = shared.registry();
        for entry in reg.connections.values() {
            entry.login.enforce(now);
        }
    }
}

fn accept_loop(bound: Bound, shared: Arc<Shared>) {
    // EMFILE and friends repeat every retry while they last: log them once a minute.
    let mut last_warning: Option<Instant> = None;
    loop {
        match bound.listener.accept() {
            Ok((stream, addr)) => {
                if signals::terminating() {
                    // Shutting down: the listener stays open until exit, but serves nobody.
                    continue;
                }
                handle_new(stream, addr, &bound, &shared);
            }
            Err(e) => {
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    log::warn!("accept on {}: {e}", bound.addr);
                    last_warning = Some(Instant::now());
                }
                // Without a pause EMFILE/ENFILE would spin; clients wait in the backlog
                // until sessions end and free descriptors.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle_new(stream: TcpStream, addr: SocketAddr, bound: &Bound, shared: &Arc<Shared>) {
    let ip = addr.ip().to_canonical();
    if bound.proxy && !config::trusted(&shared.runtime().config.proxy_trusted_networks, ip) {
        // Not one of our proxies: whatever it would send as a header is not to be believed.
        log::warn!(
            "refused {ip} on {}: not in proxy_trusted_networks",
            bound.addr
        );
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let known = (!bound.proxy).then_some(ip);
    let stream = Arc::new(stream);
    let Some((slot, login)) = shared.admit(known, &stream) else {
        log::warn!("refused {ip}: too many connections");
        refuse(&stream);
        return;
    };
    let shared_for_thread = Arc::clone(shared);
    let (tls, proxy) = (bound.tls, bound.proxy);
    let spawned = thread::Builder::new()
        .name(String::from("session"))
        .stack_size(SESSION_STACK)
        .spawn(move || session_thread(stream, addr, tls, proxy, slot, login, shared_for_thread));
    if let Err(e) = spawned {
        // The closure (with the socket and the slot) was dropped: the slot is free again and
        // the client sees its connection closed.
        log::error!("cannot start a session thread for {ip}: {e}");
    }
}

/// Tell an over-limit client why, without letting it hold up the accept loop.
fn refuse(stream: &TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = { stream }.write_all(TOO_MANY);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Read the PROXY header a trusted proxy sends first; the client it names, or `None` after
/// logging why the connection is closed without a greeting.
fn read_proxy_header(stream: &TcpStream, proxy_addr: SocketAddr) -> Option<SocketAddr> {
    let deadline = Instant::now() + PROXY_HEADER_TIMEOUT;
    let result = proxy::read_header(&mut { stream }, deadline, &mut |s: &&TcpStream, left| {
        s.set_read_timeout(Some(left))
    });
    let proxy_ip = proxy_addr.ip().to_canonical();
    match result {
        Ok(header) => match header.origin {
            Origin::Client { source, .. } => {
                log::debug!(
                    "PROXY v{} header from {proxy_ip}: client {source}",
                    header.version
                );
                Some(SocketAddr::new(source.ip().to_canonical(), source.port()))
            }
            // The proxy's own health check: it is its own client.
            Origin::Local => Some(proxy_addr),
        },
        // A proxy's TCP health check connects and closes: not worth a warning every few
        // seconds.
        Err(e @ proxy::ReadHeaderError::Closed) => {
            log::debug!("connection from proxy {proxy_ip} {e}");
            None
        }
        Err(e) => {
            log::warn!("closed connection from proxy {proxy_ip}: {e}");
            let _ = stream.shutdown(Shutdown::Both);
            None
        }
    }
}

fn session_thread(
    stream: Arc<TcpStream>,
    socket_peer: SocketAddr,
    tls: bool,
    proxy: bool,
    slot: Arc<Slot>,
    login: Arc<LoginWatch>,
    shared: Arc<Shared>,
) {
    let addr = if proxy {
        let Some(client) = read_proxy_header(&stream, socket_peer) else {
            return;
        };
        if !slot.assign(client.ip()) {
            log::warn!("refused {}: too many connections", client.ip());
            if tls {
                let _ = stream.shutdown(Shutdown::Both);
            } else {
                refuse(&stream);
            }
            return;
        }
        client
    } else {
        socket_peer
    };
    let _ = stream.set_nodelay(true);
    let runtime = shared.runtime();
    let mut services = MboxServices::new(
        Arc::clone(&runtime),
        PrivilegeMode::Thread,
        Arc::clone(&shared.clients),
        Some(addr),
        login.deadline(),
    );
    {
        // XCLIENT moves the connection to the client it names, for the limits too.
        let slot = Arc::clone(&slot);
        services.on_client_change(Box::new(move |ip| slot.assign(ip)));
    }
    // Held until the thread ends, even by a panic.
    let _slot = slot;
    if let Err(e) = services.restrict_before_login() {
        log::error!("session for {}: {e}", addr.ip().to_canonical());
        return;
    }
    let session_params = runtime.session_params(Some(addr), tls, &services);
    let conn = runtime.connection_params(Some(addr), tls, login);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        connection::serve(Stream::tcp_shared(stream), &services, session_params, &conn)
    }));
    if outcome.is_err() {
        // The maildrop was dropped during unwinding, uncommitted; the panic hook logged why.
        log::error!(
            "session for {} aborted by an internal error",
            addr.ip().to_canonical()
        );
    }
}

fn reload(shared: &Arc<Shared>) {
    let old = shared.runtime();
    match old.reload() {
        Ok(new) => {
            *shared.runtime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
            log::info!("configuration reloaded");
        }
        Err(e) => log::error!("reload failed, keeping the running configuration: {e}"),
    }
}

fn shut_down(shared: &Arc<Shared>) {
    let mut reg = shared.registry();
    let open = reg.total;
    log::info!("shutting down, ending {open} session(s) without committing");
    for socket in reg.connections.values().filter_map(|e| e.login.socket()) {
        // Wakes reads blocked in the kernel; the session sees EOF, checks the shutdown flag,
        // tells the client (the write side is still open) and ends without UPDATE.
        let _ = socket.shutdown(Shutdown::Read);
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while reg.total > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log::warn!("{} session(s) still running at exit", reg.total);
            break;
        }
        reg = shared
            .ended
            .wait_timeout(reg, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_reports_the_ephemeral_port_and_refuses_a_taken_one() {
        let bound = bind(&["127.0.0.1:0".parse().expect("addr")], &[]).expect("bind");
        assert_eq!(bound.len(), 1);
        let addr = bound[0].addr;
        assert_ne!(addr.port(), 0);
        let err = bind(&[addr], &[]).expect_err("in use");
        assert!(err.contains(&addr.to_string()), "{err}");
        assert!(bind(&[], &[]).is_err());
    }

    #[test]
    fn wildcards_of_both_families_share_a_port() {
        // Find a free port, then ask for both wildcards on it, IPv4 first as admins write it.
        let probe = TcpListener::bind("[::]:0").or_else(|_| TcpListener::bind("0.0.0.0:0"));
        let port = probe.expect("probe").local_addr().expect("addr").port();
        let v4: SocketAddr = format!("0.0.0.0:{port}").parse().expect("v4");
        let v6: SocketAddr = format!("[::]:{port}").parse().expect("v6");
        let bound = match bind(&[v4, v6], &[]) {
            Ok(b) => b,
            // No IPv6 on this machine: nothing to check.
            Err(e) if e.contains("[::]") => return,
            Err(e) => panic!("{e}"),
        };
        assert!(!bound.is_empty());
        TcpStream::connect(("127.0.0.1", port)).expect("IPv4 reaches the server");
    }
}
