//! TLS through the connection driver: STLS (with the CVE-2011-0411 discard of pipelined
//! plaintext), implicit TLS on a `tls_listen` socket, and `-i -T` over pipes. Certificates are
//! made with the openssl command-line tool.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::*;

/// A self-signed certificate for `localhost` in the fixture directory, or `None` (skip).
fn certificate(f: &Fixture) -> Option<(PathBuf, PathBuf)> {
    let openssl = require("openssl")?;
    let cert = f.path().join("cert.pem");
    let key = f.path().join("key.pem");
    let (st, _out, err) = run(Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    assert!(st.success(), "openssl req: {err}");
    Some((cert, key))
}

fn connector() -> native_tls::TlsConnector {
    native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("connector")
}

fn line<R: BufRead>(r: &mut R) -> String {
    let mut l = String::new();
    r.read_line(&mut l).expect("read line");
    l
}

fn tls_fixture() -> Option<Fixture> {
    let mut f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1]));
    let (cert, key) = certificate(&f)?;
    f.config(&format!("tls_cert = {}", cert.display()));
    f.config(&format!("tls_key = {}", key.display()));
    Some(f)
}

#[test]
fn stls_discards_plaintext_pipelined_after_it() {
    let Some(f) = tls_fixture() else { return };
    let server = f.standalone();
    let mut tcp = TcpStream::connect(&server.addr).expect("connect");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut greeting = [0u8; 512];
    let n = tcp.read(&mut greeting).expect("greeting");
    assert!(greeting[..n].starts_with(b"+OK"));
    // An attacker in the path appends a command to the client's STLS.
    tcp.write_all(b"STLS\r\nUSER mallory\r\n").expect("send");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        tcp.read_exact(&mut byte).expect("STLS reply");
        reply.push(byte[0]);
    }
    assert!(reply.starts_with(b"+OK"), "{}", show(&reply));
    let tls = connector().connect("localhost", tcp).expect("handshake");
    let mut r = BufReader::new(tls);
    r.get_mut().write_all(b"PASS secret\r\n").expect("send");
    // Had "USER mallory" run inside TLS, PASS would now try to log in as mallory.
    let l = line(&mut r);
    assert!(l.starts_with("-ERR"), "PASS right after the handshake: {l}");
    r.get_mut()
        .write_all(b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
        .expect("send");
    assert!(line(&mut r).starts_with("+OK"));
    assert!(line(&mut r).starts_with("+OK"));
    assert_eq!(line(&mut r), format!("+OK 1 {}\r\n", content(MSG1).len()));
    assert!(line(&mut r).starts_with("+OK"));
}

#[test]
fn implicit_tls_listener_serves_a_session() {
    let Some(mut f) = tls_fixture() else { return };
    // The harness binds the plain port; add a TLS one on another free port.
    let port = free_port("127.0.0.1");
    f.config(&format!("tls_listen = 127.0.0.1:{port}"));
    let _server = f.standalone();
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect TLS port");
    tcp.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let tls = connector().connect("localhost", tcp).expect("handshake");
    let mut r = BufReader::new(tls);
    assert!(line(&mut r).starts_with("+OK"));
    r.get_mut().write_all(b"CAPA\r\n").expect("send");
    let mut caps = Vec::new();
    loop {
        let l = line(&mut r);
        if l == ".\r\n" {
            break;
        }
        caps.push(l);
    }
    assert!(!caps.iter().any(|c| c.starts_with("STLS")), "{caps:?}");
    r.get_mut()
        .write_all(b"USER alice\r\nPASS secret\r\nRETR 1\r\n")
        .expect("send");
    assert!(line(&mut r).starts_with("+OK"));
    assert!(line(&mut r).starts_with("+OK"));
    assert!(line(&mut r).starts_with("+OK"));
    let mut body = Vec::new();
    loop {
        let l = line(&mut r);
        if l == ".\r\n" {
            break;
        }
        body.extend_from_slice(l.as_bytes());
    }
    assert_eq!(show(&body), show(&wire(MSG1)));
}

/// The child's stdin and stdout as one stream, as a TLS client needs it.
#[derive(Debug)]
struct Pipes {
    to: ChildStdin,
    from: ChildStdout,
}

impl Read for Pipes {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.from.read(buf)
    }
}

impl Write for Pipes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.to.flush()
    }
}

#[test]
fn inetd_implicit_tls_over_pipes() {
    let Some(f) = tls_fixture() else { return };
    let conf = f.write_config("127.0.0.1:1");
    let mut child: Child = Command::new(binary())
        .arg("-c")
        .arg(&conf)
        .args(["-i", "-T"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pipes = Pipes {
        to: child.stdin.take().expect("stdin"),
        from: child.stdout.take().expect("stdout"),
    };
    let tls = connector()
        .connect("localhost", pipes)
        .expect("handshake over pipes");
    let mut r = BufReader::new(tls);
    assert!(line(&mut r).starts_with("+OK"));
    r.get_mut()
        .write_all(b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
        .expect("send");
    assert!(line(&mut r).starts_with("+OK"));
    assert!(line(&mut r).starts_with("+OK"));
    assert_eq!(line(&mut r), format!("+OK 1 {}\r\n", content(MSG1).len()));
    assert!(line(&mut r).starts_with("+OK"));
    let st = wait_timeout(&mut child, PATIENCE).expect("exit");
    assert!(st.success(), "{st}");
}
