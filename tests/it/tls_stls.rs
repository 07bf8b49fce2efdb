//! STLS semantics on the wire (RFC 2595, CVE-2011-0411) and TLS in inetd mode, with a raw
//! client that upgrades the very socket it typed into.

use crate::common::tls as tls_support;

use std::io::Write;

use tls_support::*;

fn capa(client: &mut Client<impl std::io::Read + Write>) -> Vec<String> {
    let first = client.cmd("CAPA");
    assert!(first.starts_with("+OK"), "{first}");
    client.multiline()
}

/// The CVE-2011-0411 test: a man in the middle appends `USER alice` to the client's STLS in
/// the same segment; the client later sends only PASS. Had the injected USER been run, the
/// PASS would log the attacker's chosen user in.
#[test]
fn commands_pipelined_after_stls_are_discarded() {
    let setup = Setup::new();
    let server = setup.start();
    let mut plain = Client::new(server.connect());
    assert!(plain.line().starts_with("+OK"));
    plain.send(b"STLS\r\nUSER alice\r\n");
    let reply = plain.line();
    assert!(reply.starts_with("+OK"), "{reply}");
    let sock = plain.into_inner();
    let tls = connector(&setup.pki)
        .connect("localhost", sock)
        .expect("handshake after STLS");
    let mut client = Client::new(tls);
    // The first line after the handshake must answer our first command, not the injected one.
    let first = client.cmd("NOOP");
    assert!(
        first.starts_with("-ERR"),
        "NOOP is not valid before login: {first}"
    );
    let pass = client.cmd("PASS secret");
    assert!(
        pass.starts_with("-ERR"),
        "the injected USER survived the handshake: {pass}"
    );
    // A normal login still works inside TLS.
    assert!(client.cmd("USER alice").starts_with("+OK"));
    assert!(client.cmd("PASS secret").starts_with("+OK"));
    assert!(client.cmd("QUIT").starts_with("+OK"));
    drop(server);
}

#[test]
fn stls_once_only_before_login_and_capa_follows() {
    let setup = Setup::new();
    let server = setup.start();

    // Plain connection: STLS advertised.
    let mut plain = Client::new(server.connect());
    plain.line();
    assert!(capa(&mut plain).contains(&String::from("STLS\r\n")));
    // After login STLS is refused and still not offered as usable.
    assert!(plain.cmd("USER alice").starts_with("+OK"));
    assert!(plain.cmd("PASS secret").starts_with("+OK"));
    let late = plain.cmd("STLS");
    assert!(late.starts_with("-ERR"), "{late}");
    assert!(plain.cmd("STAT").starts_with("+OK 2 "), "session goes on");
    assert!(plain.cmd("QUIT").starts_with("+OK"));

    // Inside TLS: CAPA no longer lists STLS and a second STLS is refused.
    let mut c = Client::new(server.connect());
    c.line();
    assert!(c.cmd("STLS").starts_with("+OK"));
    let tls = connector(&setup.pki)
        .connect("localhost", c.into_inner())
        .expect("handshake");
    let mut c = Client::new(tls);
    let caps = capa(&mut c);
    assert!(!caps.contains(&String::from("STLS\r\n")), "{caps:?}");
    assert!(caps.contains(&String::from("USER\r\n")), "{caps:?}");
    let again = c.cmd("STLS");
    assert!(again.starts_with("-ERR"), "{again}");
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // The implicit-TLS port never offers STLS.
    let tls = connector(&setup.pki)
        .connect("localhost", server.connect_tls_port())
        .expect("handshake on the TLS port");
    let mut c = Client::new(tls);
    assert!(c.line().starts_with("+OK"));
    assert!(!capa(&mut c).contains(&String::from("STLS\r\n")));
    assert!(c.cmd("STLS").starts_with("-ERR"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn plaintext_auth_never_holds_inside_tls_too() {
    // `never` means no USER/PASS anywhere; `tls` allows loopback, so the refusal on a
    // non-loopback plaintext link cannot be tested on 127.0.0.1 — `never` can.
    let mut setup = Setup::new();
    setup.config("plaintext_auth = never");
    let server = setup.start();
    let tls = connector(&setup.pki)
        .connect("localhost", server.connect_tls_port())
        .expect("handshake");
    let mut c = Client::new(tls);
    c.line();
    assert!(!capa(&mut c).contains(&String::from("USER\r\n")));
    let user = c.cmd("USER alice");
    assert!(user.starts_with("-ERR"), "{user}");
}

#[test]
fn inetd_stls_and_implicit_tls() {
    let setup = Setup::new();

    // -i: STLS over the pipes.
    let mut c = Client::new(setup.inetd(&[]));
    assert!(c.line().starts_with("+OK"));
    c.send(b"STLS\r\nUSER alice\r\n");
    assert!(c.line().starts_with("+OK"));
    let tls = connector(&setup.pki)
        .connect("localhost", c.into_inner())
        .expect("STLS handshake over pipes");
    let mut c = Client::new(tls);
    assert!(
        c.cmd("PASS secret").starts_with("-ERR"),
        "injected USER was run"
    );
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c.cmd("STAT").starts_with("+OK 2 "));
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // -i -T: TLS from the first byte.
    let tls = connector(&setup.pki)
        .connect("localhost", setup.inetd(&["-T"]))
        .expect("implicit TLS over pipes");
    let mut c = Client::new(tls);
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    let retr = c.cmd("RETR 2");
    assert!(retr.starts_with("+OK"), "{retr}");
    assert_eq!(c.multiline().concat(), crlf(MSG2));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn inetd_implicit_tls_with_plaintext_client_ends_quietly() {
    let setup = Setup::new();
    let mut pipes = setup.inetd(&["-T"]);
    pipes.write_all(b"USER alice\r\n").unwrap();
    pipes.flush().unwrap();
    let mut c = Client::new(pipes);
    // No greeting in plaintext, just the end of the process.
    assert!(c.closed());
}

/// What inetd really hands over: a connected TCP socket as stdin and stdout.
#[test]
fn inetd_implicit_tls_on_a_real_socket() {
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    let setup = Setup::new();
    let conf = setup.write_config("127.0.0.1:1", "");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let stdout = server_side.try_clone().unwrap();
    let mut child = Command::new(binary())
        .arg("-c")
        .arg(&conf)
        .args(["-i", "-T"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(server_side)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(stdout)))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mboxpopd -i -T");
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let tls = connector(&setup.pki)
        .connect("localhost", client)
        .expect("implicit TLS over an inetd socket");
    let mut c = Client::new(tls);
    assert!(c.line().starts_with("+OK"));
    assert!(c.cmd("USER alice").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    assert!(c
        .cmd("LIST 1")
        .starts_with(&format!("+OK 1 {}", crlf(MSG1).len())));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    assert!(child.wait().unwrap().success());
}
