//! The certificate and key files: reading PEM (PKCS#8 and traditional RSA/EC keys) or
//! PKCS#12, and the startup checks (expiry, key/certificate match) that would otherwise only
//! show up as failed handshakes at run time.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::transport::tls_config::TlsConfig;

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

/// Read the certificate (PEM or PKCS#12) and key named by `config` and run the startup checks.
pub(super) fn load(config: &TlsConfig) -> Result<(Parsed, CertificateInfo), TlsSetupError> {
    let cert_data = read_file(&config.cert)?;
    let parsed = if is_pkcs12(&config.cert, &cert_data) {
        parse_pkcs12(&config.cert, &cert_data)?
    } else {
        parse_pem(config, &cert_data)?
    };
    let info = validate(config, &parsed)?;
    Ok((parsed, info))
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

/// The parsed identity before it goes to the acceptor.
pub(super) struct Parsed {
    pub(super) cert: X509,
    pub(super) chain: Vec<X509>,
    pub(super) key: PKey<Private>,
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

pub(super) fn subject(cert: &X509) -> String {
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
