//! The server's TLS context: certificate loading with startup validation, SIGHUP reload, and
//! handshakes bounded by a deadline.
//!
//! Where native-tls falls short, the server side uses the `openssl` crate (the OpenSSL binding
//! native-tls itself is built on, so no new library enters the build):
//! - TLS 1.3: native-tls 0.2 builds its acceptor from Mozilla's *intermediate v4* profile,
//!   which sets `SSL_OP_NO_TLSv1_3` with no way to clear it, so a native-tls server never
//!   negotiates TLS 1.3. The acceptor here is Mozilla's *intermediate v5* profile (TLS 1.2 and
//!   1.3, ECDHE + AEAD ciphers), with `tls_min_version` applied on top.
//! - traditional `BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY` files (native-tls takes
//!   PKCS#8 only; certbot writes PKCS#8, `openssl genrsa` on 1.x and many CAs' tools do not);
//! - refusing an expired certificate, and a key that does not belong to the certificate, at
//!   startup rather than failing every handshake at run time.
//!
//! native-tls remains the client side of the unit tests.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslAcceptor, SslMethod, SslOptions, SslVersion};
type TlsAcceptor = SslAcceptor;
use openssl::asn1::Asn1Time;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::transport::tls_config::{TlsConfig, TlsVersion};

/// A TLS stream as the driver sees it: the handshake deadline wrapper stays inside, inert
/// once the handshake is done.
pub type TlsStream<S> = openssl::ssl::SslStream<Deadline<S>>;

/// Certificates expiring sooner than this produce a warning at load time.
const EXPIRY_WARNING_DAYS: u32 = 14;

/// Why the TLS context could not be built. Every variant names the file involved, because the
/// admin reads this once, at startup, and must know which file to fix.
#[derive(Debug)]
pub enum TlsSetupError {
    /// The file is missing or unreadable (permissions, a directory, ...).
    Read { path: PathBuf, source: io::Error },
    /// No PEM certificate in the file.
    NoCertificate { path: PathBuf },
    /// A certificate block that OpenSSL cannot parse.
    BadCertificate { path: PathBuf, detail: String },
    /// No private key in the file, or one OpenSSL cannot parse.
    BadKey { path: PathBuf, detail: String },
    /// A passphrase-protected key: a daemon has nobody to ask for the passphrase.
    EncryptedKey { path: PathBuf },
    /// A PKCS#12 file that cannot be opened with an empty password or lacks cert or key.
    BadPkcs12 { path: PathBuf, detail: String },
    /// The server certificate's notAfter is in the past.
    Expired { path: PathBuf, not_after: String },
    /// The server certificate's notBefore is in the future (clock or issuance problem).
    NotYetValid { path: PathBuf, not_before: String },
    /// The private key does not belong to the server certificate.
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// OpenSSL refused to build the acceptor from an otherwise valid identity.
    Acceptor { detail: String },
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Read { path, source } => {
                write!(f, "cannot read {}: {}", path.display(), source)
            }
            TlsSetupError::NoCertificate { path } => {
                write!(f, "{}: no PEM certificate found", path.display())
            }
            TlsSetupError::BadCertificate { path, detail } => {
                write!(f, "{}: invalid certificate: {}", path.display(), detail)
            }
            TlsSetupError::BadKey { path, detail } => {
                write!(f, "{}: invalid private key: {}", path.display(), detail)
            }
            TlsSetupError::EncryptedKey { path } => write!(
                f,
                "{}: the private key is passphrase-protected; store it unencrypted \
                 (mode 0600, readable by root only)",
                path.display()
            ),
            TlsSetupError::BadPkcs12 { path, detail } => write!(
                f,
                "{}: unusable PKCS#12 file (an empty password is required): {}",
                path.display(),
                detail
            ),
            TlsSetupError::Expired { path, not_after } => write!(
                f,
                "{}: the certificate expired on {}",
                path.display(),
                not_after
            ),
            TlsSetupError::NotYetValid { path, not_before } => write!(
                f,
                "{}: the certificate is not valid before {} (check the system clock)",
                path.display(),
                not_before
            ),
            TlsSetupError::KeyMismatch { cert, key } => write!(
                f,
                "the private key {} does not match the certificate {}",
                key.display(),
                cert.display()
            ),
            TlsSetupError::Acceptor { detail } => {
                write!(f, "cannot set up TLS: {}", detail)
            }
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsSetupError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What was loaded, for the startup/reload log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The server certificate's subject, e.g. `CN=mail.example.org`.
    pub subject: String,
    /// notAfter as OpenSSL prints it (`Jan  1 00:00:00 2027 GMT`).
    pub not_after: String,
    /// Whole days until notAfter (0 on the last day).
    pub days_left: i32,
    /// Certificates after the server's own (intermediates).
    pub chain_len: usize,
}

impl fmt::Display for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, valid until {} ({} days), {} chain certificate(s)",
            self.subject, self.not_after, self.days_left, self.chain_len
        )
    }
}

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

fn read_file(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn is_pkcs12(path: &Path, data: &[u8]) -> bool {
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"));
    // DER starts with a SEQUENCE tag; PEM with text. Trust the content over the name.
    by_name || data.first() == Some(&0x30)
}

/// The parsed identity before it goes to native-tls.
struct Parsed {
    cert: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

fn parse_pem(config: &TlsConfig, cert_pem: &[u8]) -> Result<Parsed, TlsSetupError> {
    let cert_path = &config.cert;
    // OpenSSL's own error for a file of other PEM blocks is an empty "OpenSSL error".
    if !contains(cert_pem, b"-----BEGIN CERTIFICATE-----")
        && !contains(cert_pem, b"-----BEGIN TRUSTED CERTIFICATE-----")
        && !contains(cert_pem, b"-----BEGIN X509 CERTIFICATE-----")
    {
        return Err(TlsSetupError::NoCertificate {
            path: cert_path.clone(),
        });
    }
    let mut certs = X509::stack_from_pem(cert_pem)
        .map_err(|e| TlsSetupError::BadCertificate {
            path: cert_path.clone(),
            detail: e.to_string(),
        })?
        .into_iter();
    let cert = certs.next().ok_or_else(|| TlsSetupError::NoCertificate {
        path: cert_path.clone(),
    })?;
    let chain: Vec<X509> = certs.collect();

    let key_path = &config.key;
    let key_pem = if key_path == cert_path {
        cert_pem.to_vec()
    } else {
        read_file(key_path)?
    };
    if contains(&key_pem, b"ENCRYPTED") {
        return Err(TlsSetupError::EncryptedKey {
            path: key_path.clone(),
        });
    }
    if !contains(&key_pem, b"PRIVATE KEY-----") {
        return Err(TlsSetupError::BadKey {
            path: key_path.clone(),
            detail: String::from("no PEM private key found"),
        });
    }
    // The callback refuses to supply a passphrase: without it OpenSSL would prompt on the
    // controlling terminal for an encrypted key the check above missed.
    let key = PKey::private_key_from_pem_callback(&key_pem, |_| Ok(0)).map_err(|e| {
        TlsSetupError::BadKey {
            path: key_path.clone(),
            detail: e.to_string(),
        }
    })?;
    Ok(Parsed { cert, chain, key })
}

fn parse_pkcs12(path: &Path, der: &[u8]) -> Result<Parsed, TlsSetupError> {
    let bad = |detail: String| TlsSetupError::BadPkcs12 {
        path: path.to_path_buf(),
        detail,
    };
    let parsed = Pkcs12::from_der(der)
        .and_then(|p| p.parse2(""))
        .map_err(|e| bad(e.to_string()))?;
    let cert = parsed
        .cert
        .ok_or_else(|| bad(String::from("no certificate inside")))?;
    let key = parsed
        .pkey
        .ok_or_else(|| bad(String::from("no private key inside")))?;
    // PKCS12_parse returns the CA stack in reverse order.
    let chain = parsed.ca.into_iter().flatten().rev().collect();
    Ok(Parsed { cert, chain, key })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

fn validate(config: &TlsConfig, p: &Parsed) -> Result<CertificateInfo, TlsSetupError> {
    let openssl_err = |e: openssl::error::ErrorStack| TlsSetupError::Acceptor {
        detail: e.to_string(),
    };
    let now = Asn1Time::days_from_now(0).map_err(openssl_err)?;
    let cert = &p.cert;
    if cert.not_after() < now {
        return Err(TlsSetupError::Expired {
            path: config.cert.clone(),
            not_after: cert.not_after().to_string(),
        });
    }
    if cert.not_before() > now {
        return Err(TlsSetupError::NotYetValid {
            path: config.cert.clone(),
            not_before: cert.not_before().to_string(),
        });
    }
    let cert_key = cert
        .public_key()
        .map_err(|e| TlsSetupError::BadCertificate {
            path: config.cert.clone(),
            detail: e.to_string(),
        })?;
    if !cert_key.public_eq(&p.key) {
        return Err(TlsSetupError::KeyMismatch {
            cert: config.cert.clone(),
            key: config.key.clone(),
        });
    }
    // Intermediates are only warned about: old Let's Encrypt fullchain files carry an expired
    // cross-signed root that clients ignore, and refusing to start over it would be wrong.
    for extra in &p.chain {
        if extra.not_after() < now {
            log::warn!(
                "{}: chain certificate {} expired on {}",
                config.cert.display(),
                subject(extra),
                extra.not_after()
            );
        }
    }
    let days_left = now
        .diff(cert.not_after())
        .map(|d| d.days)
        .map_err(openssl_err)?;
    if days_left < EXPIRY_WARNING_DAYS as i32 {
        log::warn!(
            "{}: the certificate expires in {} day(s), on {}",
            config.cert.display(),
            days_left,
            cert.not_after()
        );
    }
    Ok(CertificateInfo {
        subject: subject(cert),
        not_after: cert.not_after().to_string(),
        days_left,
        chain_len: p.chain.len(),
    })
}

fn subject(cert: &X509) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry
                .data()
                .to_string()
                .unwrap_or_else(|_| String::from("?"));
            format!("{}={}", key, value)
        })
        .collect();
    parts.join(", ")
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
    let cert_data = read_file(&config.cert)?;
    let parsed = if is_pkcs12(&config.cert, &cert_data) {
        parse_pkcs12(&config.cert, &cert_data)?
    } else {
        parse_pem(config, &cert_data)?
    };
    let info = validate(config, &parsed)?;

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
#[path = "../../tests/tls_support/certs.rs"]
mod certs;

#[cfg(test)]
mod tests {
    use super::certs::Pki;
    use super::*;
    use native_tls::{Certificate, Identity, Protocol, TlsConnector};
    use std::net::TcpListener;
    use std::thread;

    fn config(cert: &Path, key: &Path) -> TlsConfig {
        TlsConfig {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            min_version: TlsVersion::Tls12,
        }
    }

    fn connector(pki: &Pki) -> TlsConnector {
        let ca = Certificate::from_pem(&fs::read(&pki.ca).expect("ca")).expect("ca pem");
        TlsConnector::builder()
            .add_root_certificate(ca)
            .disable_built_in_roots(true)
            .build()
            .expect("connector")
    }

    /// Accept one connection with `ctx` on a loopback listener in a thread, run the handshake
    /// with `timeout`, echo one line back on success. Returns the port and the thread's result.
    fn serve_once(
        ctx: &TlsContext,
        timeout: Duration,
    ) -> (u16, thread::JoinHandle<Result<(), HandshakeFailure>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ctx = ctx.clone();
        let handle = thread::spawn(move || {
            let (sock, _) = listener.accept().expect("accept");
            let mut tls = ctx.accept_timed(sock, timeout, Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            let n = tls
                .read(&mut buf)
                .map_err(|e| HandshakeFailure::Io(e.to_string()))?;
            tls.write_all(&buf[..n])
                .map_err(|e| HandshakeFailure::Io(e.to_string()))?;
            Ok(())
        });
        (port, handle)
    }

    /// Full handshake with a verifying client; returns the server certificate's CN.
    fn roundtrip(pki: &Pki, ctx: &TlsContext) -> String {
        let (port, server) = serve_once(ctx, Duration::from_secs(10));
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut tls = connector(pki)
            .connect("localhost", sock)
            .expect("handshake");
        tls.write_all(b"ping\r\n").expect("write");
        let mut buf = [0u8; 6];
        tls.read_exact(&mut buf).expect("echo");
        assert_eq!(&buf, b"ping\r\n");
        let cert = tls.peer_certificate().expect("peer").expect("a cert");
        server.join().expect("thread").expect("server side");
        let x = X509::from_der(&cert.to_der().expect("der")).expect("x509");
        subject(&x)
    }

    #[test]
    fn pkcs8_pem_loads_and_serves() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).expect("load");
        let info = ctx.certificate_info();
        assert_eq!(info.subject, "CN=localhost");
        assert!((28..=30).contains(&info.days_left), "{info}");
        assert_eq!(info.chain_len, 0);
        assert_eq!(roundtrip(&pki, &ctx), "CN=localhost");
    }

    #[test]
    fn traditional_rsa_and_ec_keys_are_accepted() {
        let pki = Pki::new();
        let rsa = pki.traditional(&pki.key, "rsa-trad.key");
        let head = fs::read_to_string(&rsa).expect("read");
        assert!(
            head.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{head}"
        );
        // native-tls alone refuses this format: that is why the key is converted.
        assert!(Identity::from_pkcs8(&fs::read(&pki.cert).unwrap(), head.as_bytes()).is_err());
        let ctx = TlsContext::load(&config(&pki.cert, &rsa)).expect("rsa load");
        assert_eq!(roundtrip(&pki, &ctx), "CN=localhost");

        let (ec_cert, ec_key) = pki.issue("ec", "ec.localhost", "ec");
        let ec_trad = pki.traditional(&ec_key, "ec-trad.key");
        assert!(fs::read_to_string(&ec_trad)
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let ctx = TlsContext::load(&config(&ec_cert, &ec_trad)).expect("ec load");
        assert_eq!(roundtrip(&pki, &ctx), "CN=ec.localhost");
    }

    #[test]
    fn fullchain_combined_file_and_pkcs12() {
        let pki = Pki::new();
        let chain = pki.fullchain(&pki.cert, "fullchain.pem");
        let ctx = TlsContext::load(&config(&chain, &pki.key)).expect("chain");
        assert_eq!(ctx.certificate_info().chain_len, 1);
        assert_eq!(roundtrip(&pki, &ctx), "CN=localhost");

        // One file holding chain and key, as some admins (and haproxy) keep them.
        let combined = pki.path("combined.pem");
        let mut data = fs::read(&chain).unwrap();
        data.extend(fs::read(&pki.key).unwrap());
        fs::write(&combined, data).unwrap();
        let ctx = TlsContext::load(&config(&combined, &combined)).expect("combined");
        assert_eq!(roundtrip(&pki, &ctx), "CN=localhost");

        let p12 = pki.pkcs12(&pki.cert, &pki.key, "server.p12");
        let ctx = TlsContext::load(&config(&p12, &p12)).expect("p12");
        assert_eq!(ctx.certificate_info().chain_len, 1);
        assert_eq!(roundtrip(&pki, &ctx), "CN=localhost");
    }

    #[test]
    fn missing_files_name_the_path() {
        let pki = Pki::new();
        let missing = pki.path("nope.pem");
        let err = TlsContext::load(&config(&missing, &pki.key)).unwrap_err();
        assert!(matches!(&err, TlsSetupError::Read { path, .. } if *path == missing));
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let err = TlsContext::load(&config(&pki.cert, &missing)).unwrap_err();
        assert!(matches!(&err, TlsSetupError::Read { path, .. } if *path == missing));
        // A directory is unreadable as a file.
        let err = TlsContext::load(&config(pki.dir.path(), &pki.key)).unwrap_err();
        assert!(matches!(err, TlsSetupError::Read { .. }), "{err}");
    }

    #[test]
    fn garbage_and_swapped_files_are_refused() {
        let pki = Pki::new();
        let junk = pki.path("junk.pem");
        fs::write(&junk, "not a certificate\n").unwrap();
        let err = TlsContext::load(&config(&junk, &pki.key)).unwrap_err();
        assert!(matches!(err, TlsSetupError::NoCertificate { .. }), "{err}");
        fs::write(
            &junk,
            "-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n",
        )
        .unwrap();
        let err = TlsContext::load(&config(&junk, &pki.key)).unwrap_err();
        assert!(matches!(err, TlsSetupError::NoCertificate { .. }), "{err}");
        // A certificate block whose base64 is broken.
        let mut broken = fs::read_to_string(&pki.cert).unwrap();
        broken.replace_range(100..110, "!!!!!!!!!!");
        fs::write(&junk, broken).unwrap();
        let err = TlsContext::load(&config(&junk, &pki.key)).unwrap_err();
        assert!(matches!(err, TlsSetupError::BadCertificate { .. }), "{err}");
        // Key where the certificate belongs, certificate where the key belongs.
        let err = TlsContext::load(&config(&pki.key, &pki.cert)).unwrap_err();
        assert!(matches!(err, TlsSetupError::NoCertificate { .. }), "{err}");
        let err = TlsContext::load(&config(&pki.cert, &pki.cert)).unwrap_err();
        assert!(matches!(err, TlsSetupError::BadKey { .. }), "{err}");
        let p12_junk = pki.path("junk.p12");
        fs::write(&p12_junk, b"\x30\x03\x02\x01\x00").unwrap();
        let err = TlsContext::load(&config(&p12_junk, &p12_junk)).unwrap_err();
        assert!(matches!(err, TlsSetupError::BadPkcs12 { .. }), "{err}");
    }

    #[test]
    fn encrypted_key_is_refused_without_prompting() {
        let pki = Pki::new();
        let enc = pki.encrypted(&pki.key, "enc.key");
        let err = TlsContext::load(&config(&pki.cert, &enc)).unwrap_err();
        assert!(matches!(err, TlsSetupError::EncryptedKey { .. }), "{err}");
        assert!(err.to_string().contains("enc.key"));
    }

    #[test]
    fn expired_and_future_certificates_are_refused() {
        let pki = Pki::new();
        let (cert, key) = pki.expired();
        let err = TlsContext::load(&config(&cert, &key)).unwrap_err();
        match &err {
            TlsSetupError::Expired { path, not_after } => {
                assert_eq!(path, &cert);
                assert!(not_after.contains("2021"), "{not_after}");
            }
            other => panic!("expected Expired, got {other:?}"),
        }
        assert!(err.to_string().contains("expired"), "{err}");
        let (cert, key) = pki.not_yet_valid();
        let err = TlsContext::load(&config(&cert, &key)).unwrap_err();
        assert!(matches!(err, TlsSetupError::NotYetValid { .. }), "{err}");
    }

    #[test]
    fn mismatched_key_is_refused_though_native_tls_accepts_it() {
        let pki = Pki::new();
        let (_, other_key) = pki.issue("other", "other", "rsa:2048");
        // The reason for the check: native-tls builds an acceptor from a mismatched pair
        // without complaint, and only handshakes fail later.
        let id = Identity::from_pkcs8(
            &fs::read(&pki.cert).unwrap(),
            &fs::read(&other_key).unwrap(),
        )
        .expect("identity");
        assert!(native_tls::TlsAcceptor::new(id).is_ok());
        let err = TlsContext::load(&config(&pki.cert, &other_key)).unwrap_err();
        match &err {
            TlsSetupError::KeyMismatch { cert, key } => {
                assert_eq!(cert, &pki.cert);
                assert_eq!(key, &other_key);
            }
            other => panic!("expected KeyMismatch, got {other:?}"),
        }
    }

    #[test]
    fn tls13_is_negotiated_and_can_be_the_minimum() {
        let pki = Pki::new();
        let ca = || Certificate::from_pem(&fs::read(&pki.ca).unwrap()).unwrap();
        // A TLS 1.3-only client gets in with the default minimum (1.2)...
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).expect("load");
        let (port, server) = serve_once(&ctx, Duration::from_secs(10));
        let only13 = TlsConnector::builder()
            .add_root_certificate(ca())
            .min_protocol_version(Some(Protocol::Tlsv13))
            .build()
            .unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let stream = only13.connect("localhost", sock);
        assert!(stream.is_ok(), "TLS 1.3 handshake: {:?}", stream.err());
        drop(stream);
        let _ = server.join();
        // ...and with `tls_min_version = 1.3`, a client that stops at 1.2 is refused.
        let mut cfg = config(&pki.cert, &pki.key);
        cfg.min_version = TlsVersion::Tls13;
        let ctx = TlsContext::load(&cfg).expect("load with minimum 1.3");
        let (port, server) = serve_once(&ctx, Duration::from_secs(10));
        let only12 = TlsConnector::builder()
            .add_root_certificate(ca())
            .max_protocol_version(Some(Protocol::Tlsv12))
            .build()
            .unwrap();
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(only12.connect("localhost", sock).is_err());
        assert_eq!(
            server.join().unwrap(),
            Err(HandshakeFailure::ProtocolVersion)
        );
    }

    #[test]
    fn reload_serves_new_certificate_and_keeps_existing_sessions() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).expect("load");

        // An established session on the old certificate.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server_ctx = ctx.clone();
        let old_session = thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut tls = server_ctx
                .accept_timed(sock, Duration::from_secs(10), Some(Duration::from_secs(10)))
                .unwrap();
            // Echo lines until EOF: the session lives across the reload.
            let mut buf = [0u8; 64];
            loop {
                let n = tls.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                tls.write_all(&buf[..n]).unwrap();
            }
        });
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut client = connector(&pki).connect("localhost", sock).unwrap();
        client.write_all(b"one\n").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();

        let (new_cert, new_key) = pki.issue("renewed", "renewed.localhost", "ec");
        ctx.reload(&config(&new_cert, &new_key)).expect("reload");
        assert_eq!(ctx.certificate_info().subject, "CN=renewed.localhost");
        assert_eq!(roundtrip(&pki, &ctx), "CN=renewed.localhost");

        client.write_all(b"two\n").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"two\n");
        drop(client);
        old_session.join().expect("old session ended cleanly");

        // A failed reload keeps the current certificate.
        let (bad_cert, bad_key) = pki.expired();
        assert!(ctx.reload(&config(&bad_cert, &bad_key)).is_err());
        assert_eq!(roundtrip(&pki, &ctx), "CN=renewed.localhost");
    }

    #[test]
    fn silent_client_times_out() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).unwrap();
        let (port, server) = serve_once(&ctx, Duration::from_millis(300));
        let _sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let t = Instant::now();
        assert_eq!(server.join().unwrap(), Err(HandshakeFailure::Timeout));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn trickling_client_cannot_stretch_the_deadline() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).unwrap();
        let (port, server) = serve_once(&ctx, Duration::from_millis(600));
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let t = Instant::now();
        // A TLS record header, then one byte every 100 ms: each read succeeds well within a
        // per-read timeout, only an overall deadline ends it.
        let trickle = thread::spawn(move || {
            for b in [0x16u8, 0x03, 0x01, 0x01, 0x00]
                .iter()
                .chain([0u8; 100].iter())
            {
                if sock.write_all(&[*b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        assert_eq!(server.join().unwrap(), Err(HandshakeFailure::Timeout));
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
        trickle.join().unwrap();
    }

    #[test]
    fn plaintext_and_dropped_clients_are_classified() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).unwrap();

        let (port, server) = serve_once(&ctx, Duration::from_secs(5));
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.write_all(b"USER alice\r\n").unwrap();
        assert_eq!(server.join().unwrap(), Err(HandshakeFailure::NotTls));

        let (port, server) = serve_once(&ctx, Duration::from_secs(5));
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The start of a ClientHello record, then a hang-up.
        sock.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01])
            .unwrap();
        drop(sock);
        assert_eq!(server.join().unwrap(), Err(HandshakeFailure::Dropped));

        let (port, server) = serve_once(&ctx, Duration::from_secs(5));
        drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
        assert_eq!(server.join().unwrap(), Err(HandshakeFailure::Dropped));
    }

    #[test]
    fn plain_accept_maps_errors_to_io_kinds() {
        let pki = Pki::new();
        let ctx = TlsContext::load(&config(&pki.cert, &pki.key)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"CAPA\r\n").unwrap();
        let (sock, _) = listener.accept().unwrap();
        let err = ctx.accept(sock).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}

#[cfg(test)]
mod old_protocol_tests {
    use super::certs::Pki;
    use super::*;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};
    use std::thread;

    /// Run `openssl s_client` with `args` against a one-shot server built from `min`, and
    /// return (client succeeded, server result).
    fn s_client(min: TlsVersion, args: &[&str]) -> (bool, Result<(), HandshakeFailure>) {
        let pki = Pki::new();
        let ctx = TlsContext::load(&TlsConfig {
            cert: pki.cert.clone(),
            key: pki.key.clone(),
            min_version: min,
        })
        .expect("load");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut tls = ctx.accept_timed(sock, Duration::from_secs(10), None)?;
            // Wait for the client to hang up, so its exit status reflects the handshake only.
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest);
            Ok(())
        });
        let connect = format!("127.0.0.1:{port}");
        let out = Command::new("openssl")
            .arg("s_client")
            .args(["-connect", &connect, "-CAfile"])
            .arg(&pki.ca)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client");
        let ok = out.status.success();
        if !ok {
            eprintln!("s_client: {}", String::from_utf8_lossy(&out.stderr));
        }
        (ok, server.join().unwrap())
    }

    const TLS11: &[&str] = &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];

    #[test]
    fn tls11_client_is_refused_by_default() {
        let (ok, server) = s_client(TlsVersion::Tls12, TLS11);
        assert!(!ok);
        assert_eq!(server, Err(HandshakeFailure::ProtocolVersion));
        // The same client, made to offer 1.2, gets through: the refusal is about the version.
        let (ok, server) = s_client(TlsVersion::Tls12, &["-tls1_2"]);
        assert!(ok);
        assert_eq!(server, Ok(()));
    }

    /// `tls_min_version = 1.0` lifts mboxpopd's version check, but OpenSSL 3 at its default
    /// security level still refuses TLS 1.1 for lack of a permitted signature algorithm
    /// (SHA-1/MD5): older OpenSSL builds, or a system openssl.cnf with SECLEVEL=0, let it
    /// through. Either way the refusal is no longer "protocol version".
    #[test]
    fn min_10_lifts_the_version_check() {
        let (ok, server) = s_client(TlsVersion::Tls10, TLS11);
        assert_ne!(
            server,
            Err(HandshakeFailure::ProtocolVersion),
            "client ok={ok}"
        );
        assert_eq!(ok, server.is_ok());
    }
}

#[cfg(test)]
mod garbage_tests {
    use super::certs::Pki;
    use super::*;
    use proptest::prelude::*;
    use std::net::{Shutdown, TcpListener};
    use std::sync::OnceLock;
    use std::thread;

    fn context() -> &'static (Pki, TlsContext) {
        static CTX: OnceLock<(Pki, TlsContext)> = OnceLock::new();
        CTX.get_or_init(|| {
            let pki = Pki::new();
            let ctx = TlsContext::load(&TlsConfig {
                cert: pki.cert.clone(),
                key: pki.key.clone(),
                min_version: TlsVersion::Tls12,
            })
            .expect("load");
            (pki, ctx)
        })
    }

    /// Send `bytes`, then half-close: the handshake must fail promptly, never succeed, never
    /// wait for its deadline.
    fn handshake_with(bytes: Vec<u8>) -> (Result<(), HandshakeFailure>, Duration) {
        let (_, ctx) = context();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ctx = ctx.clone();
        let server = thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let started = Instant::now();
            let r = ctx
                .accept_timed(sock, Duration::from_secs(10), None)
                .map(|_| ());
            (r, started.elapsed())
        });
        let mut c = TcpStream::connect(addr).unwrap();
        // The server may already have given up and closed: write errors are fine.
        let _ = c.write_all(&bytes);
        let _ = c.shutdown(Shutdown::Write);
        let result = server.join().unwrap();
        drop(c);
        result
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_fail_fast(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (result, took) = handshake_with(bytes);
            prop_assert!(result.is_err());
            prop_assert_ne!(result, Err(HandshakeFailure::Timeout));
            prop_assert!(took < Duration::from_secs(5), "{:?}", took);
        }

        #[test]
        fn plaintext_commands_are_recognised(line in "[A-Za-z]{4}( [ -~]{1,40})?\r\n") {
            // What a POP3 client sends to the TLS port by mistake.
            let (result, _) = handshake_with(line.into_bytes());
            prop_assert_eq!(result, Err(HandshakeFailure::NotTls));
        }

        #[test]
        fn truncated_records_fail_fast(
            version in 0u8..5,
            len in any::<u16>(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            // A handshake record header with an arbitrary length and body, then EOF.
            let mut bytes = vec![0x16, 0x03, version, (len >> 8) as u8, len as u8];
            bytes.extend(body);
            let (result, took) = handshake_with(bytes);
            prop_assert!(result.is_err());
            prop_assert_ne!(result, Err(HandshakeFailure::Timeout));
            prop_assert!(took < Duration::from_secs(5), "{:?}", took);
        }
    }
}
