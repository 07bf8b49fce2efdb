//! Hostile or broken TLS clients cost one log line and no thread; SIGHUP swaps the certificate
//! for new connections while running TLS sessions continue.

use crate::common::tls as tls_support;

use std::fs;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use tls_support::*;

/// Wait until the daemon is back to `threads` threads (sessions end asynchronously).
fn settle(server: &Server, threads: usize) -> usize {
    let started = Instant::now();
    loop {
        let now = server.threads();
        if now <= threads || started.elapsed() > PATIENCE {
            return now;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn junk_plaintext_and_dropped_handshakes_leak_nothing() {
    let mut setup = Setup::new();
    setup.config("handshake_timeout = 1s");
    let server = setup.start();
    // Let the readiness probes' sessions end first.
    thread::sleep(Duration::from_millis(300));
    let baseline = server.threads();
    let before = server.log().lines().count();

    let rounds = 5;
    for _ in 0..rounds {
        // A plaintext POP3 client on the TLS port.
        let mut c = Client::new(server.connect_tls_port());
        c.send(b"USER alice\r\n");
        assert!(c.closed());
        // Binary garbage.
        let mut c = Client::new(server.connect_tls_port());
        c.send(&[0xff; 64]);
        assert!(c.closed());
        // Half a ClientHello, then gone.
        let mut s = server.connect_tls_port();
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
            .unwrap();
        drop(s);
        // STLS, then garbage instead of a handshake.
        let mut c = Client::new(server.connect());
        c.line();
        assert!(c.cmd("STLS").starts_with("+OK"));
        c.send(b"GET / HTTP/1.0\r\n\r\n");
        assert!(c.closed());
    }
    // A client that says nothing: the handshake timeout (1 s) ends it.
    let started = Instant::now();
    let mut silent = Client::new(server.connect_tls_port());
    assert!(silent.closed());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    let after = settle(&server, baseline);
    assert!(
        after <= baseline,
        "threads: {baseline} before, {after} after"
    );
    // One line per failed handshake (4 per round + the silent one), and no more.
    let expected = rounds * 4 + 1;
    let log = server.wait_log("handshake", expected);
    let new_lines: Vec<&str> = log.lines().skip(before).collect();
    let handshake_lines = new_lines.iter().filter(|l| l.contains("handshake")).count();
    assert_eq!(handshake_lines, expected, "{}", new_lines.join("\n"));
    assert!(
        log.contains("timed out") || log.contains("timeout"),
        "{log}"
    );

    // Still serving.
    let tls = connector(&setup.pki)
        .connect("localhost", server.connect_tls_port())
        .expect("handshake");
    let mut c = Client::new(tls);
    assert!(c.line().starts_with("+OK"));
}

#[test]
fn sighup_serves_new_certificate_and_keeps_sessions() {
    let setup = Setup::new();
    let server = setup.start();

    // A logged-in TLS session on the old certificate.
    let tls = connector(&setup.pki)
        .connect("localhost", server.connect_tls_port())
        .expect("handshake");
    let old_cert = tls.peer_certificate().unwrap().unwrap().to_der().unwrap();
    let mut old = Client::new(tls);
    assert!(old.line().starts_with("+OK"));
    assert!(old.cmd("USER alice").starts_with("+OK"));
    assert!(old.cmd("PASS secret").starts_with("+OK"));

    // Renewal as certbot does it: new files in place of the old ones.
    let (new_cert, new_key) = setup.pki.issue("renewed", "renewed.localhost", "ec");
    let chain = setup.pki.fullchain(&new_cert, "renewed-chain.pem");
    fs::copy(&chain, &setup.cert).unwrap();
    fs::copy(&new_key, &setup.key).unwrap();
    server.signal("HUP");

    // New connections (both kinds) get the new certificate once the reload is done.
    let started = Instant::now();
    let new_der = loop {
        let tls = connector(&setup.pki)
            .connect("localhost", server.connect_tls_port())
            .expect("handshake after reload");
        let der = tls.peer_certificate().unwrap().unwrap().to_der().unwrap();
        if der != old_cert {
            break der;
        }
        assert!(started.elapsed() < PATIENCE, "certificate never changed");
        thread::sleep(Duration::from_millis(50));
    };
    let mut c = Client::new(server.connect());
    c.line();
    assert!(c.cmd("STLS").starts_with("+OK"));
    let tls = connector(&setup.pki)
        .connect("localhost", c.into_inner())
        .expect("STLS after reload");
    assert_eq!(
        tls.peer_certificate().unwrap().unwrap().to_der().unwrap(),
        new_der
    );

    server.wait_log("TLS certificate reloaded: CN=renewed.localhost", 1);

    // The old session carries on.
    let retr = old.cmd("RETR 1");
    assert!(retr.starts_with("+OK"), "{retr}");
    // On the wire the dot line is stuffed.
    assert_eq!(
        old.multiline().concat(),
        crlf(MSG1).replace("\r\n.a", "\r\n..a")
    );
    assert!(old.cmd("QUIT").starts_with("+OK"));

    // A broken renewal keeps the current certificate and the daemon.
    let (bad_cert, _) = setup.pki.expired();
    fs::copy(&bad_cert, &setup.cert).unwrap();
    server.signal("HUP");
    server.wait_log("expired", 1);
    let tls = connector(&setup.pki)
        .connect("localhost", server.connect_tls_port())
        .expect("handshake after failed reload");
    assert_eq!(
        tls.peer_certificate().unwrap().unwrap().to_der().unwrap(),
        new_der
    );
}

#[test]
fn inetd_handshake_timeout_ends_the_process() {
    // Over pipes there are no socket timeouts: the deadline is enforced with poll(2).
    let mut setup = Setup::new();
    setup.config("handshake_timeout = 1s");
    let started = Instant::now();
    let mut pipes = setup.inetd(&["-T"]);
    while pipes.child.try_wait().expect("try_wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mboxpopd -i -T still waiting for a handshake"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    // Same after STLS: the client answers "+OK Begin TLS" with silence.
    let started = Instant::now();
    let mut c = Client::new(setup.inetd(&[]));
    c.line();
    assert!(c.cmd("STLS").starts_with("+OK"));
    assert!(c.closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}
