//! The server's TLS context: the acceptor, SIGHUP reload, and handshakes bounded by a
//! deadline. Reading the certificate and key files and their startup checks are in
//! [`certs`].
//!
//! Where native-tls falls short, the server side uses the `openssl` crate (the OpenSSL binding
//! native-tls itself is built on; native-tls is now only the tests' client):
//! - TLS 1.3: native-tls 0.2 builds its acceptor from Mozilla's *intermediate v4* profile,
//!   which sets `SSL_OP_NO_TLSv1_3` with no way to clear it, so a native-tls server never
//!   negotiates TLS 1.3. The acceptor here is Mozilla's *intermediate v5* profile (TLS 1.2 and
//!   1.3, ECDHE + AEAD ciphers), with `tls_min_version` applied on top.
//! - traditional `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY` files (native-tls takes
//!   PKCS#8 only; certbot writes PKCS#8, `openssl genrsa` on 1.x and many CAs' tools do not);
//! - refusing an expired certificate, and a key that does not belong to the certificate, at
//!   startup rather than failing every handshake at run time.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslAcceptor, SslMethod, SslOptions, SslVersion};
type TlsAcceptor = SslAcceptor;

pub use crate::transport::stream::IoTimeout;
use crate::transport::tls_config::{TlsConfig, TlsVersion};

mod certs;
pub use certs::{CertificateInfo, TlsSetupError};

/// A TLS stream as the driver sees it: the handshake deadline wrapper stays inside, inert
/// once the handshake is done.
pub type TlsStream<S> = openssl::ssl::SslStream<Deadline<S>>;

/// The shared TLS acceptor. Cloning is cheap; all clones see a [`TlsContext::reload`].
#[derive(Clone)]
pub struct TlsContext {
    // The acceptor is cloned out under the read lock and the handshake runs without the lock,
    // so a reload never waits for a slow client, and streams already accepted keep the
    // OpenSSL context they were built from (it is reference-counted).
    acceptor: Arc<RwLock<TlsAcceptor>>,
    info: Arc<RwLock<CertificateInfo>>,
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("certificate", &self.certificate_info())
            .finish()
    }
}

impl TlsContext {
    /// Read and validate the certificate and key, and build the acceptor. Run this before
    /// dropping privileges: the key is normally readable by root only.
    pub fn load(config: &TlsConfig) -> Result<TlsContext, TlsSetupError> {
        let (acceptor, info) = build(config)?;
        Ok(TlsContext {
            acceptor: Arc::new(RwLock::new(acceptor)),
            info: Arc::new(RwLock::new(info)),
        })
    }

    /// Replace the certificate (SIGHUP). On error the old acceptor stays in use. Sessions
    /// already running, and handshakes already started, are not affected either way.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), TlsSetupError> {
        let (acceptor, info) = build(config)?;
        // The admin's confirmation that a renewal was picked up.
        log::info!("TLS certificate reloaded: {}", info);
        // A poisoned lock only means a panic elsewhere while holding it; the value inside is
        // a whole acceptor either way, so recover it rather than stop serving TLS.
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = info;
        Ok(())
    }

    /// The certificate currently served.
    pub fn certificate_info(&self) -> CertificateInfo {
        self.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn current(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Server-side handshake on a blocking stream with no deadline of its own (the caller's
    /// socket timeouts, if any, apply to each read).
    pub fn accept<S: Read + Write>(&self, stream: S) -> io::Result<openssl::ssl::SslStream<S>> {
        self.current().accept(stream).map_err(|e| match e {
            HandshakeError::Failure(m) => {
                let e = m.into_error();
                io::Error::new(classify_kind(&e), e.to_string())
            }
            HandshakeError::SetupFailure(e) => io::Error::other(e),
            HandshakeError::WouldBlock(_) => {
                io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
            }
        })
    }

    /// Server-side handshake that must complete within `timeout` in total (a client trickling
    /// one byte per read timeout cannot stretch it). Afterwards the stream's timeouts are set
    /// to `then` (the session's inactivity timeout) and the deadline is lifted.
    pub fn accept_timed<S: Read + Write + IoTimeout>(
        &self,
        stream: S,
        timeout: Duration,
        then: Option<Duration>,
    ) -> Result<TlsStream<S>, HandshakeFailure> {
        let started = Instant::now();
        let wrapped = Deadline {
            inner: stream,
            deadline: Some(started + timeout),
        };
        match self.current().accept(wrapped) {
            Ok(mut tls) => {
                tls.get_mut().deadline = None;
                tls.get_ref()
                    .inner
                    .set_io_timeout(then)
                    .map_err(|e| HandshakeFailure::Io(e.to_string()))?;
                Ok(tls)
            }
            Err(HandshakeError::Failure(m)) => Err(HandshakeFailure::from_error(&m.into_error())),
            Err(HandshakeError::SetupFailure(e)) => Err(HandshakeFailure::Tls(e.to_string())),
            // Only a non-blocking stream ends up here; ours block with timeouts.
            Err(HandshakeError::WouldBlock(_)) => Err(HandshakeFailure::Timeout),
        }
    }
}

/// Why a handshake failed, reduced to what the one log line for it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The handshake deadline passed.
    Timeout,
    /// The client closed or reset the connection mid-handshake.
    Dropped,
    /// The client sent something that is not TLS (plaintext POP3 on 995, HTTP, garbage).
    NotTls,
    /// The client offered only protocol versions below `tls_min_version`.
    ProtocolVersion,
    /// Any other TLS-level refusal (no shared cipher, bad record, alert from the client, ...).
    Tls(String),
    /// A socket error other than the above.
    Io(String),
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Timeout => f.write_str("TLS handshake timed out"),
            HandshakeFailure::Dropped => f.write_str("client disconnected during TLS handshake"),
            HandshakeFailure::NotTls => f.write_str("client did not speak TLS"),
            HandshakeFailure::ProtocolVersion => {
                f.write_str("client offered only TLS versions below tls_min_version")
            }
            HandshakeFailure::Tls(s) => write!(f, "TLS handshake failed: {}", s),
            HandshakeFailure::Io(s) => write!(f, "TLS handshake I/O error: {}", s),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

impl HandshakeFailure {
    fn from_error(e: &openssl::ssl::Error) -> HandshakeFailure {
        if let Some(io) = e.io_error() {
            return match io.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HandshakeFailure::Timeout,
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => HandshakeFailure::Dropped,
                _ => HandshakeFailure::Io(io.to_string()),
            };
        }
        // OpenSSL's reason strings are the only classification native-tls exposes.
        let text = e.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("wrong version number")
            || lower.contains("http request")
            || lower.contains("https proxy request")
            || lower.contains("packet length too long")
            || lower.contains("record layer failure")
        {
            HandshakeFailure::NotTls
        } else if lower.contains("unsupported protocol") || lower.contains("version too low") {
            HandshakeFailure::ProtocolVersion
        } else if lower.contains("unexpected eof") || lower.contains("interrupted") {
            // OpenSSL 3 reports a peer that vanished as "unexpected eof while reading";
            // rust-openssl reports a clean EOF mid-handshake as "interrupted".
            HandshakeFailure::Dropped
        } else {
            HandshakeFailure::Tls(text)
        }
    }
}

fn classify_kind(e: &openssl::ssl::Error) -> io::ErrorKind {
    match HandshakeFailure::from_error(e) {
        HandshakeFailure::Timeout => io::ErrorKind::TimedOut,
        HandshakeFailure::Dropped => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    }
}

/// A stream with an optional overall deadline. During the handshake every read and write gets
/// the time left as its timeout; afterwards the wrapper passes I/O straight through.
#[derive(Debug)]
pub struct Deadline<S> {
    inner: S,
    deadline: Option<Instant>,
}

impl<S> Deadline<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: IoTimeout> Deadline<S> {
    fn arm(&self) -> io::Result<()> {
        match self.deadline {
            None => Ok(()),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // A zero timeout means "block forever" to setsockopt: stop here instead.
                if left < Duration::from_millis(1) {
                    return Err(timed_out());
                }
                self.inner.set_io_timeout(Some(left))
            }
        }
    }

    fn map(&self, e: io::Error) -> io::Error {
        // SO_RCVTIMEO expiry surfaces as EAGAIN; OpenSSL would take WouldBlock for "retry
        // later" on a non-blocking socket and hand back a half-done handshake.
        if self.deadline.is_some() && e.kind() == io::ErrorKind::WouldBlock {
            timed_out()
        } else {
            e
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake deadline passed")
}

impl<S: Read + IoTimeout> Read for Deadline<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.inner.read(buf).map_err(|e| self.map(e))
    }
}

impl<S: Write + IoTimeout> Write for Deadline<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.inner.write(buf).map_err(|e| self.map(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn protocol(v: TlsVersion) -> Result<SslVersion, TlsSetupError> {
    Ok(match v {
        TlsVersion::Tls10 => SslVersion::TLS1,
        TlsVersion::Tls11 => SslVersion::TLS1_1,
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    })
}

fn build(config: &TlsConfig) -> Result<(TlsAcceptor, CertificateInfo), TlsSetupError> {
    let min = protocol(config.min_version)?;
    let (parsed, info) = certs::load(config)?;

    let acceptor_err = |e: openssl::error::ErrorStack| TlsSetupError::Acceptor {
        detail: e.to_string(),
    };
    // Mozilla intermediate v5: TLS 1.2 and 1.3, ECDHE + AEAD only.
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(acceptor_err)?;
    b.set_private_key(&parsed.key).map_err(acceptor_err)?;
    b.set_certificate(&parsed.cert).map_err(acceptor_err)?;
    for extra in parsed.chain {
        b.add_extra_chain_cert(extra).map_err(acceptor_err)?;
    }
    b.check_private_key().map_err(acceptor_err)?;
    if config.min_version < TlsVersion::Tls12 {
        // An admin who lowered the minimum wants legacy clients in: the v5 profile switches
        // TLS 1.0/1.1 off with options and offers only TLS 1.2+ cipher suites.
        b.clear_options(SslOptions::NO_TLSV1 | SslOptions::NO_TLSV1_1);
        b.set_cipher_list("DEFAULT").map_err(acceptor_err)?;
    }
    b.set_min_proto_version(Some(min)).map_err(acceptor_err)?;
    let acceptor = b.build();
    Ok((acceptor, info))
}

#[cfg(test)]
#[path = "../../tests/it/common/tls/certs.rs"]
mod pki;

#[cfg(test)]
mod tests;
