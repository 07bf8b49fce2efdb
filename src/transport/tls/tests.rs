//! The TLS context's tests: loading and checking files, handshakes and their deadline, old
//! protocol versions, garbage from clients.

use super::certs::subject;
use super::pki::Pki;
use super::*;
use native_tls::{Certificate, Identity, Protocol, TlsConnector};
use openssl::x509::X509;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
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

mod old_protocol_tests {
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

mod garbage_tests {
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
