//! Drive one POP3 session over a stream: the I/O loop around `protocol::session::Session`.
//!
//! Output is batched: a response is flushed only when no further pipelined command is already
//! buffered, so each response (or a pipelined batch of them) leaves in as few writes as
//! possible. Every way out of the loop other than QUIT leaves the maildrop uncommitted: the
//! session, and with it the maildrop, is simply dropped.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::session::{Flow, Session, SessionParams, Step};
use crate::protocol::Services;
use crate::server::signals;
use crate::transport::line_reader::{Event, LineReader, ReadError};
use crate::transport::stream::Stream;
use crate::transport::tls::TlsContext;

/// Output is buffered up to this many bytes before it is written out mid-response.
pub const OUTPUT_BUFFER: usize = 64 * 1024;

/// The transport side of a connection (the session side is `SessionParams`).
#[derive(Clone)]
pub struct ConnectionParams {
    /// The TCP peer; `None` for inetd over pipes.
    pub peer: Option<SocketAddr>,
    /// Inactivity timeout between commands.
    pub timeout: Duration,
    /// Bound of each blocking write.
    pub send_timeout: Duration,
    pub handshake_timeout: Duration,
    /// The deadline for logging in, watched from outside the session's thread too.
    pub login: Arc<LoginWatch>,
    /// The TLS context for STLS or implicit TLS, if TLS is configured.
    pub tls: Option<TlsContext>,
    /// Handshake before the greeting (port 995, `-i -T`).
    pub implicit_tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginState {
    Waiting,
    LoggedIn,
    Expired,
}

/// The login deadline of one connection. The session thread checks it between commands; a
/// watcher thread ([`LoginWatch::enforce`]) also shuts the socket down when it passes, which
/// catches what no check between commands can: a client trickling one byte at a time, a
/// stalled TLS handshake, a client that does not read.
#[derive(Debug)]
pub struct LoginWatch {
    deadline: Instant,
    state: Mutex<LoginState>,
    socket: Option<Arc<TcpStream>>,
}

/// How long after the deadline an expired connection is cut in both directions (first only
/// its read side, so the session can still say why).
const EXPIRY_GRACE: Duration = Duration::from_secs(5);

impl LoginWatch {
    pub fn new(limit: Duration, socket: Option<Arc<TcpStream>>) -> LoginWatch {
        LoginWatch {
            deadline: Instant::now() + limit,
            state: Mutex::new(LoginState::Waiting),
            socket,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The watched socket, for a shutdown from another thread.
    pub fn socket(&self) -> Option<&TcpStream> {
        self.socket.as_deref()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LoginState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn logged_in(&self) {
        let mut state = self.state();
        if *state == LoginState::Waiting {
            *state = LoginState::LoggedIn;
        }
    }

    fn expired(&self) -> bool {
        *self.state() == LoginState::Expired
    }

    /// Whether the connection is past its login deadline without having logged in.
    fn overdue(&self) -> bool {
        *self.state() != LoginState::LoggedIn && Instant::now() >= self.deadline
    }

    /// Called by a watcher: past the deadline and still not logged in, shut the socket's read
    /// side (the session wakes, says why and ends); past the grace period, both sides.
    /// Returns false once the watch needs no more attention.
    pub fn enforce(&self, now: Instant) -> bool {
        let mut state = self.state();
        match *state {
            LoginState::LoggedIn => false,
            _ if now < self.deadline => true,
            LoginState::Waiting => {
                *state = LoginState::Expired;
                if let Some(s) = &self.socket {
                    let _ = s.shutdown(Shutdown::Read);
                }
                true
            }
            LoginState::Expired if now >= self.deadline + EXPIRY_GRACE => {
                if let Some(s) = &self.socket {
                    let _ = s.shutdown(Shutdown::Both);
                }
                false
            }
            LoginState::Expired => true,
        }
    }
}

const LOGIN_TIMEOUT_REPLY: &[u8] = b"-ERR Login timeout, closing connection\r\n";

/// How a connection ended, for the caller's bookkeeping and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub user: Option<String>,
    pub reason: String,
}

/// Run one session to its end and log exactly one line about it.
pub fn serve(
    stream: Stream,
    services: &dyn Services,
    session_params: SessionParams,
    conn: &ConnectionParams,
) -> Outcome {
    let started = Instant::now();
    let mut session = Session::new(services, session_params);
    let reason = drive(stream, &mut session, conn);
    let summary = session.summary();
    // The session's peer: XCLIENT may have replaced the connection's.
    let peer = session.peer().to_string();
    // The driver knows why the transport ended; otherwise the session does (QUIT, too many
    // authentication failures, a maildrop error).
    let reason = reason.unwrap_or_else(|| match summary.end {
        "" => String::from("closed by server"),
        end => end.to_string(),
    });
    log::info!(
        "session end: user={} peer={} retr={}/{} dele={}/{} end={} time={:.1}s",
        summary.user.as_deref().unwrap_or("-"),
        peer,
        summary.retrieved.0,
        summary.retrieved.1,
        summary.deleted.0,
        summary.deleted.1,
        reason,
        started.elapsed().as_secs_f64(),
    );
    Outcome {
        user: summary.user,
        reason,
    }
}

/// `None` when the session itself decided to close.
fn drive(stream: Stream, session: &mut Session<'_>, conn: &ConnectionParams) -> Option<String> {
    let mut stream = stream;
    if conn.implicit_tls {
        let Some(ctx) = &conn.tls else {
            return Some(String::from("tls not configured"));
        };
        stream = match stream.start_tls(ctx, conn.handshake_timeout, Some(conn.timeout)) {
            Ok(s) => s,
            Err(_) if conn.login.expired() => return Some(String::from("login timeout")),
            Err(e) => return Some(format!("tls handshake: {e}")),
        };
    } else if let Err(e) = stream.set_timeout(Some(conn.timeout)) {
        return Some(format!("io error: {e}"));
    }
    if let Err(e) = stream.set_send_timeout(conn.send_timeout) {
        return Some(format!("io error: {e}"));
    }
    let mut pending = Vec::with_capacity(OUTPUT_BUFFER);
    let mut reader = LineReader::new();
    {
        let mut out = Output::new(&mut stream, &mut pending);
        if let Err(e) = session.greeting(&mut out).and_then(|()| out.flush()) {
            return Some(io_reason(&e));
        }
    }
    loop {
        match serve_lines(&mut stream, &mut reader, &mut pending, session, &conn.login) {
            End::Done(reason) => {
                stream.close();
                return reason;
            }
            End::StartTls => {
                // Whatever the client pipelined after STLS arrived in plaintext and must not
                // be executed inside the TLS session (CVE-2011-0411).
                reader.discard_buffered();
                let Some(ctx) = &conn.tls else {
                    stream.close();
                    return Some(String::from("tls not configured"));
                };
                stream = match stream.start_tls(ctx, conn.handshake_timeout, Some(conn.timeout)) {
                    Ok(tls) => tls,
                    Err(_) if conn.login.expired() => return Some(String::from("login timeout")),
                    Err(e) => return Some(format!("tls handshake: {e}")),
                };
                if let Err(e) = stream.set_send_timeout(conn.send_timeout) {
                    return Some(format!("io error: {e}"));
                }
                session.tls_started();
            }
        }
    }
}

enum End {
    /// The session asked for a TLS handshake; its reply has been flushed.
    StartTls,
    /// The session is over; `None` when the session itself closed it.
    Done(Option<String>),
}

/// Read and answer commands until the session ends or asks for STLS.
fn serve_lines(
    stream: &mut Stream,
    reader: &mut LineReader,
    pending: &mut Vec<u8>,
    session: &mut Session<'_>,
    login: &LoginWatch,
) -> End {
    let done = |reason: &str| End::Done(Some(reason.to_string()));
    let shutdown = |stream: &mut Stream, pending: &mut Vec<u8>| {
        // Best effort: the client learns why, and that nothing was deleted.
        let mut out = Output::new(stream, pending);
        let _ = out
            .write_all(b"-ERR [SYS/TEMP] Server shutting down, no changes made\r\n")
            .and_then(|()| out.flush());
        End::Done(Some(String::from("shutdown")))
    };
    loop {
        // Checked between commands: a command in progress (a commit above all) finishes.
        if signals::terminating() {
            return shutdown(stream, pending);
        }
        let timed_out = |stream: &mut Stream, pending: &mut Vec<u8>| {
            let mut out = Output::new(stream, pending);
            let _ = out
                .write_all(LOGIN_TIMEOUT_REPLY)
                .and_then(|()| out.flush());
            End::Done(Some(String::from("login timeout")))
        };
        if login.overdue() {
            return timed_out(stream, pending);
        }
        let cap = session.max_line_len();
        let step = match reader.read_line(stream, cap) {
            Ok(Event::Line(line)) => session.handle_line(line, &mut Output::new(stream, pending)),
            Ok(Event::TooLong) => session.line_too_long(&mut Output::new(stream, pending)),
            Err(ReadError::Interrupted) => continue,
            Err(ReadError::Eof { .. } | ReadError::Io(_)) if signals::terminating() => {
                return shutdown(stream, pending)
            }
            Err(ReadError::Eof { .. } | ReadError::Io(_) | ReadError::Timeout)
                if login.expired() =>
            {
                return timed_out(stream, pending)
            }
            Err(ReadError::Eof { .. }) => return done("eof"),
            Err(ReadError::Timeout) => {
                // RFC 1939 §3: the autologout timer expired; the session ends without UPDATE.
                let mut out = Output::new(stream, pending);
                let _ = out
                    .write_all(b"-ERR Disconnected for inactivity\r\n")
                    .and_then(|()| out.flush());
                return done("timeout");
            }
            Err(ReadError::Io(e)) => return End::Done(Some(io_reason(&e))),
        };
        if session.is_logged_in() {
            login.logged_in();
        }
        let Step { flow, delay } = step;
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        // Hold the output back while the client has already sent the next command.
        let batch = matches!(flow, Flow::Continue) && reader.has_buffered_line();
        if !batch {
            if let Err(e) = Output::new(stream, pending).flush() {
                return End::Done(Some(io_reason(&e)));
            }
        }
        match flow {
            Flow::Continue => {}
            Flow::Close => return End::Done(None),
            Flow::StartTls => return End::StartTls,
        }
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => String::from("disconnected"),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => String::from("write timeout"),
        _ => format!("io error: {e}"),
    }
}

/// A write buffer in front of the stream, kept across pipelined commands. Like `BufWriter`,
/// but its storage outlives each borrow of the stream (the reader needs the stream between
/// responses, and a TLS stream cannot be split into halves).
struct Output<'a> {
    stream: &'a mut Stream,
    buf: &'a mut Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(stream: &'a mut Stream, buf: &'a mut Vec<u8>) -> Self {
        Output { stream, buf }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let r = self.stream.write_all(self.buf);
            self.buf.clear();
            r?;
        }
        Ok(())
    }
}

impl Write for Output<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > OUTPUT_BUFFER {
            self.flush_buf()?;
            if data.len() >= OUTPUT_BUFFER {
                return self.stream.write(data);
            }
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (Stream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        (Stream::tcp(s), c)
    }

    fn available(c: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return got,
            }
        }
    }

    #[test]
    fn output_is_held_until_flush() {
        let (mut stream, mut client) = pair();
        let mut pending = Vec::new();
        {
            let mut out = Output::new(&mut stream, &mut pending);
            out.write_all(b"+OK 2 messages\r\n").expect("write");
            out.write_all(b"1 100\r\n2 200\r\n.\r\n").expect("write");
        }
        assert!(available(&mut client).is_empty());
        // A later response joins the batch; flushing sends both at once.
        let mut out = Output::new(&mut stream, &mut pending);
        out.write_all(b"+OK\r\n").expect("write");
        out.flush().expect("flush");
        assert_eq!(
            available(&mut client),
            b"+OK 2 messages\r\n1 100\r\n2 200\r\n.\r\n+OK\r\n"
        );
        assert!(pending.is_empty());
    }

    #[test]
    fn large_output_streams_through_a_bounded_buffer() {
        let (mut stream, mut client) = pair();
        let reader = std::thread::spawn(move || {
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut all = Vec::new();
            client.read_to_end(&mut all).expect("read");
            all
        });
        let mut pending = Vec::new();
        let mut want = Vec::new();
        {
            let mut out = Output::new(&mut stream, &mut pending);
            for i in 0..2000u32 {
                let line = format!("line {i:>6} {}\r\n", "x".repeat(100));
                out.write_all(line.as_bytes()).expect("write");
                want.extend_from_slice(line.as_bytes());
                assert!(out.buf.len() <= OUTPUT_BUFFER);
            }
            let big = vec![b'y'; 3 * OUTPUT_BUFFER];
            out.write_all(&big).expect("write big");
            want.extend_from_slice(&big);
            out.flush().expect("flush");
        }
        assert!(pending.capacity() <= 2 * OUTPUT_BUFFER);
        stream.close();
        assert_eq!(reader.join().expect("join"), want);
    }
}
