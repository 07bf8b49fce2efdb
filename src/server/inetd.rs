//! inetd/xinetd mode (`-i`): one session on stdin/stdout.
//!
//! When fd 0 is a TCP socket (inetd, xinetd, systemd `Accept=yes`) it is used directly in both
//! directions, so the session gets socket timeouts, TCP_NODELAY and the peer address. Anything
//! else (pipes, a Unix socket) is read from fd 0 and written to fd 1, and the peer counts as
//! local.
//!
//! With `-P` the session starts with a PROXY protocol header (v1 or v2) naming the client,
//! as `haproxy → xinetd → mboxpopd -i -P` delivers it.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::clients::ClientTable;
use crate::server::connection::{self, LoginWatch, Outcome};
use crate::server::listener::PROXY_HEADER_TIMEOUT;
use crate::server::services::{MboxServices, PrivilegeMode, Runtime};
use crate::transport::proxy::{self, Origin};
use crate::transport::stream::{StdioPair, Stream};

/// The connection inetd handed over, and its peer (`None`: local).
pub fn stdio_stream() -> io::Result<(Stream, Option<SocketAddr>)> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let tcp = TcpStream::from(fd);
    // getpeername(2) fails on pipes (ENOTSOCK) and yields no IP address for Unix sockets.
    match tcp.peer_addr() {
        Ok(peer) => {
            let _ = tcp.set_nodelay(true);
            Ok((Stream::tcp(tcp), Some(peer)))
        }
        Err(_) => Ok((Stream::stdio(StdioPair::from_stdio()?), None)),
    }
}

/// Why an inetd session ended before its greeting.
#[derive(Debug)]
pub enum InetdError {
    Io(io::Error),
    /// `-P`: the connection did not start with an acceptable PROXY header (or came from a
    /// peer outside `proxy_trusted_networks`).
    Proxy(String),
}

impl std::fmt::Display for InetdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InetdError::Io(e) => write!(f, "stdin/stdout: {e}"),
            InetdError::Proxy(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for InetdError {}

impl From<io::Error> for InetdError {
    fn from(e: io::Error) -> Self {
        InetdError::Io(e)
    }
}

/// `-P`: the PROXY header in front of the session (`haproxy → xinetd → mboxpopd -i -P`).
/// Over a socket its peer must be a trusted proxy; over pipes whoever started us vouches.
fn proxied_peer(
    stream: &mut Stream,
    socket_peer: Option<SocketAddr>,
    config: &crate::config::Config,
) -> Result<Option<SocketAddr>, InetdError> {
    if let Some(p) = socket_peer {
        let ip = p.ip().to_canonical();
        if !crate::config::trusted(&config.proxy_trusted_networks, ip) {
            return Err(InetdError::Proxy(format!(
                "refused {ip}: not in proxy_trusted_networks"
            )));
        }
    }
    let deadline = Instant::now() + PROXY_HEADER_TIMEOUT;
    let header = proxy::read_header(stream, deadline, &mut |s: &Stream, left| {
        s.set_timeout(Some(left))
    })
    .map_err(|e| {
        let from = socket_peer.map_or_else(|| String::from("stdin"), |p| p.ip().to_string());
        InetdError::Proxy(format!("closed connection from proxy {from}: {e}"))
    })?;
    Ok(match header.origin {
        Origin::Client { source, .. } => {
            Some(SocketAddr::new(source.ip().to_canonical(), source.port()))
        }
        Origin::Local => socket_peer,
    })
}

/// Serve the one session. Credentials are dropped for the whole process when the mailbox is
/// opened (system users) or before anything else (`user =`, see main).
pub fn run(runtime: Runtime, implicit_tls: bool, proxy: bool) -> Result<Outcome, InetdError> {
    let (mut stream, peer) = stdio_stream()?;
    let peer = if proxy {
        proxied_peer(&mut stream, peer, &runtime.config)?
    } else {
        peer
    };
    let runtime = Arc::new(runtime);
    let login = Arc::new(LoginWatch::new(
        runtime.config.login_timeout,
        stream.shutdown_handle(),
    ));
    watch_login(Arc::clone(&login))?;
    // One session per process: the penalty cannot outlive it (inetd's own rate limits, or the
    // standalone daemon, do that).
    let services = MboxServices::new(
        Arc::clone(&runtime),
        PrivilegeMode::Process,
        Arc::new(ClientTable::default()),
        peer,
        login.deadline(),
    );
    services
        .restrict_before_login()
        .map_err(|e| InetdError::Io(io::Error::other(e)))?;
    let session_params = runtime.session_params(peer, implicit_tls, &services);
    let conn = runtime.connection_params(peer, implicit_tls, login);
    Ok(connection::serve(stream, &services, session_params, &conn))
}

/// The login deadline under inetd: a watcher thread cuts the socket when it passes.
fn watch_login(login: Arc<LoginWatch>) -> io::Result<()> {
    std::thread::Builder::new()
        .name(String::from("login deadline"))
        .spawn(move || {
            while login.enforce(Instant::now()) {
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .map(|_| ())
}
