//! The byte stream a session runs over: a TCP socket, inetd's stdin/stdout pair, or TLS on top
//! of either (implicit TLS from the start, or after STLS).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sys::poll;
use crate::sys::signal as signals;
use crate::transport::tls::{HandshakeFailure, TlsContext, TlsStream};

/// Streams whose blocking reads and writes can be bounded. TCP sockets use SO_RCVTIMEO /
/// SO_SNDTIMEO; a stdio transport (inetd mode) implements it with poll(2) in the driver.
pub trait IoTimeout {
    /// Bound each following blocking read and write to `timeout` (`None`: no bound).
    fn set_io_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl IoTimeout for TcpStream {
    fn set_io_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(timeout)?;
        self.set_write_timeout(timeout)
    }
}

impl<T: IoTimeout + ?Sized> IoTimeout for &T {
    fn set_io_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_io_timeout(timeout)
    }
}

/// inetd's connection: fd 0 to read, fd 1 to write (duplicated, so the process's own standard
/// streams stay untouched). Pipes cannot carry socket timeouts, so reads wait with poll(2).
#[derive(Debug)]
pub struct StdioPair {
    input: File,
    output: File,
    // IoTimeout takes &self (the TLS deadline wrapper calls it through a shared reference).
    read_timeout: Mutex<Option<Duration>>,
}

impl StdioPair {
    /// Duplicate fd 0 and fd 1.
    pub fn from_stdio() -> io::Result<StdioPair> {
        Ok(StdioPair {
            input: File::from(io::stdin().as_fd().try_clone_to_owned()?),
            output: File::from(io::stdout().as_fd().try_clone_to_owned()?),
            read_timeout: Mutex::new(None),
        })
    }

    /// A pair over arbitrary files (tests use pipes).
    pub fn new(input: File, output: File) -> StdioPair {
        StdioPair {
            input,
            output,
            read_timeout: Mutex::new(None),
        }
    }

    fn timeout(&self) -> Option<Duration> {
        *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// poll(2) is restarted after signals, so a pipe read waits in slices of this length and
/// checks for SIGTERM in between.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

impl Read for StdioPair {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.timeout().map(|t| Instant::now() + t);
        loop {
            if signals::terminating() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
                    }
                    left.min(SIGNAL_CHECK)
                }
                None => SIGNAL_CHECK,
            };
            if poll::poll_readable(self.input.as_raw_fd(), slice)? {
                return self.input.read(buf);
            }
        }
    }
}

impl Write for StdioPair {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

impl IoTimeout for StdioPair {
    fn set_io_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        // Writes to a pipe are not bounded: inetd closes the socket when the peer goes away,
        // and then writes fail with EPIPE.
        *self.read_timeout.lock().unwrap_or_else(|e| e.into_inner()) = timeout;
        Ok(())
    }
}

/// A stream without TLS.
#[derive(Debug)]
pub enum Plain {
    /// Shared with whoever may need to shut the socket down from another thread, so that a
    /// connection costs one descriptor, not one per handle.
    Tcp(Arc<TcpStream>),
    Stdio(StdioPair),
}

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Plain::Tcp(s) => (&**s).read(buf),
            Plain::Stdio(s) => s.read(buf),
        }
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Plain::Tcp(s) => (&**s).write(buf),
            Plain::Stdio(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Plain::Tcp(s) => (&**s).write_vectored(bufs),
            Plain::Stdio(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => (&**s).flush(),
            Plain::Stdio(s) => s.flush(),
        }
    }
}

impl IoTimeout for Plain {
    fn set_io_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => s.set_io_timeout(timeout),
            Plain::Stdio(s) => s.set_io_timeout(timeout),
        }
    }
}

/// What a session reads from and writes to.
pub enum Stream {
    Plain(Plain),
    Tls(Box<TlsStream<Plain>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Plain(p) => f.debug_tuple("Plain").field(p).finish(),
            Stream::Tls(_) => f.write_str("Tls(..)"),
        }
    }
}

impl Stream {
    pub fn tcp(s: TcpStream) -> Stream {
        Stream::tcp_shared(Arc::new(s))
    }

    /// A socket another thread also holds (to shut it down).
    pub fn tcp_shared(s: Arc<TcpStream>) -> Stream {
        Stream::Plain(Plain::Tcp(s))
    }

    pub fn stdio(s: StdioPair) -> Stream {
        Stream::Plain(Plain::Stdio(s))
    }

    fn plain(&self) -> &Plain {
        match self {
            Stream::Plain(p) => p,
            Stream::Tls(t) => t.get_ref().get_ref(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Bound every following blocking read and write (`None`: wait forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.plain().set_io_timeout(timeout)
    }

    /// Bound each following blocking write separately from reads: a client that stops reading
    /// (RETR output piling up) is dropped after `timeout`. Pipes have no such bound.
    pub fn set_send_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self.plain() {
            Plain::Tcp(s) => s.set_write_timeout(Some(timeout)),
            Plain::Stdio(_) => Ok(()),
        }
    }

    /// The TCP peer, if the stream is a TCP socket.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self.plain() {
            Plain::Tcp(s) => s.peer_addr().ok(),
            Plain::Stdio(_) => None,
        }
    }

    /// A second handle on the socket (the same descriptor), so another thread can shut it
    /// down (SIGTERM, login deadline) and wake a session blocked in read.
    pub fn shutdown_handle(&self) -> Option<Arc<TcpStream>> {
        match self.plain() {
            Plain::Tcp(s) => Some(Arc::clone(s)),
            Plain::Stdio(_) => None,
        }
    }

    /// Server-side TLS handshake within `handshake`; afterwards reads and writes are bounded
    /// by `then` (the inactivity timeout).
    pub fn start_tls(
        self,
        ctx: &TlsContext,
        handshake: Duration,
        then: Option<Duration>,
    ) -> Result<Stream, HandshakeFailure> {
        match self {
            Stream::Plain(p) => {
                let tls = ctx.accept_timed(p, handshake, then)?;
                Ok(Stream::Tls(Box::new(tls)))
            }
            Stream::Tls(_) => Err(HandshakeFailure::Tls(String::from("TLS already active"))),
        }
    }

    /// Send TLS close_notify where applicable and shut the socket down; errors are moot at
    /// this point (the peer may be gone).
    pub fn close(&mut self) {
        if let Stream::Tls(t) = self {
            let _ = t.shutdown();
        }
        if let Plain::Tcp(s) = self.plain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(p) => p.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(p) => p.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(p) => p.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        (s, c)
    }

    #[test]
    fn tcp_timeout_and_peer() {
        let (s, mut c) = pair();
        let mut stream = Stream::tcp(s);
        assert_eq!(
            stream.peer_addr(),
            Some(c.local_addr().expect("local addr"))
        );
        stream
            .set_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = stream.read(&mut buf).expect_err("times out");
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(started.elapsed() >= Duration::from_millis(40));
        c.write_all(b"hi").expect("write");
        assert_eq!(stream.read(&mut buf).expect("read"), 2);
        stream.write_all(b"ok").expect("write back");
        let mut back = [0u8; 2];
        c.read_exact(&mut back).expect("read back");
        assert_eq!(&back, b"ok");
    }

    #[test]
    fn shutdown_handle_wakes_a_blocked_reader() {
        let (s, _c) = pair();
        let mut stream = Stream::tcp(s);
        let handle = stream.shutdown_handle().expect("handle");
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            stream.read(&mut buf)
        });
        std::thread::sleep(Duration::from_millis(50));
        handle.shutdown(Shutdown::Both).expect("shutdown");
        assert_eq!(t.join().expect("join").expect("read"), 0);
    }
}
