//! inetd/xinetd mode (`-i`): one session on stdin/stdout.
//!
//! When fd 0 is a TCP socket (inetd, xinetd, systemd `Accept=yes`) it is used directly in both
//! directions, so the session gets socket timeouts, TCP_NODELAY and the peer address. Anything
//! else (pipes, a Unix socket) is read from fd 0 and written to fd 1, and the peer counts as
//! local.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::clients::ClientTable;
use crate::server::connection::{self, LoginWatch, Outcome};
use crate::server::services::{MboxServices, PrivilegeMode, Runtime};
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

/// Serve the one session. Credentials are dropped for the whole process when the mailbox is
/// opened (system users) or before anything else (`user =`, see main).
pub fn run(runtime: Runtime, implicit_tls: bool) -> io::Result<Outcome> {
    let (stream, peer) = stdio_stream()?;
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
    services.restrict_before_login().map_err(io::Error::other)?;
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
