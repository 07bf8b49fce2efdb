//! Real TLS clients against the real daemon: openssl s_client (STLS and implicit TLS), curl
//! (pop3s:// and pop3:// --ssl-reqd), Python's poplib (stls() and POP3_SSL), fetchmail
//! (--ssl and STLS via --sslproto) and mpop (GnuTLS; implicit and --tls-starttls).

use crate::common::tls as tls_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tls_support::*;

fn s_client(server_port: u16, setup: &Setup, extra: &[&str], input: &str) -> (bool, String) {
    let connect = format!("127.0.0.1:{server_port}");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &connect, "-CAfile"])
        .arg(&setup.pki.ca)
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-crlf",
        ])
        .args(extra);
    let (ok, out, err) = run(&mut cmd, input.as_bytes());
    (ok, format!("{out}\n--- stderr ---\n{err}"))
}

const SESSION: &str = "USER alice\nPASS secret\nSTAT\nRETR 1\nQUIT\n";

fn assert_session(out: &str) {
    let stat = format!("+OK 2 {}", crlf(MSG1).len() + crlf(MSG2).len());
    assert!(out.contains(&stat), "no {stat:?} in:\n{out}");
    assert!(out.contains("Hello over TLS."), "{out}");
    // Dot-stuffed on the wire (s_client shows the raw bytes); the size above is un-stuffed.
    assert!(out.contains("\n..a line starting with a dot"), "{out}");
}

#[test]
fn openssl_s_client_starttls_and_implicit() {
    let setup = Setup::new();
    let server = setup.start();

    let (ok, out) = s_client(
        server.port,
        &setup,
        &["-starttls", "pop3", "-ign_eof"],
        SESSION,
    );
    assert!(ok, "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // OpenSSL clients and servers agree on the newest version both speak: TLS 1.3.
    assert!(out.contains("TLSv1.3"), "{out}");
    assert_session(&out);

    let (ok, out) = s_client(server.tls_port, &setup, &["-ign_eof"], SESSION);
    assert!(ok, "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    // The full chain is sent: leaf and CA.
    assert!(out.contains(" 1 s:CN = mboxpopd test CA"), "{out}");
    assert_session(&out);
}

#[test]
fn tls11_only_client_is_refused_by_default() {
    let setup = Setup::new();
    let server = setup.start();
    // SECLEVEL=0 keeps the local OpenSSL from refusing TLS 1.1 itself: the refusal must come
    // from the server.
    let old = ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"];
    let (ok, out) = s_client(server.tls_port, &setup, &old, "QUIT\n");
    assert!(!ok, "{out}");
    assert!(out.contains("alert protocol version"), "{out}");
    let starttls = [
        "-starttls",
        "pop3",
        "-tls1_1",
        "-cipher",
        "DEFAULT@SECLEVEL=0",
    ];
    let (ok, out) = s_client(server.port, &setup, &starttls, "QUIT\n");
    assert!(!ok, "{out}");
    assert!(out.contains("alert protocol version"), "{out}");
    // The same client offering TLS 1.2 gets in.
    let (ok, out) = s_client(server.tls_port, &setup, &["-tls1_2"], "QUIT\n");
    assert!(ok, "{out}");
    server.wait_log("TLS", 2);
}

#[test]
fn curl_pop3s_and_pop3_ssl_reqd() {
    let setup = Setup::new();
    let server = setup.start();
    let curl = |url: String, extra: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&setup.pki.ca)
            .args(["-u", "alice:secret"])
            .args(extra)
            .arg(url);
        run(&mut cmd, b"")
    };

    let (ok, out, err) = curl(format!("pop3s://127.0.0.1:{}/", server.tls_port), &[]);
    assert!(ok, "{err}");
    let listing = format!("1 {}\r\n2 {}\r\n", crlf(MSG1).len(), crlf(MSG2).len());
    assert_eq!(out, listing);

    let (ok, out, err) = curl(format!("pop3s://127.0.0.1:{}/1", server.tls_port), &[]);
    assert!(ok, "{err}");
    assert_eq!(out, crlf(MSG1));

    let (ok, out, err) = curl(
        format!("pop3://127.0.0.1:{}/2", server.port),
        &["--ssl-reqd", "-v"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, crlf(MSG2));
    assert!(err.contains("STLS"), "curl did not upgrade: {err}");

    // A client that does not trust our CA refuses, on both ports.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-u", "alice:secret"])
        .arg(format!("pop3s://127.0.0.1:{}/", server.tls_port));
    let (ok, _, err) = run(&mut cmd, b"");
    assert!(!ok, "untrusted certificate accepted: {err}");
}

const POPLIB: &str = r#"
import poplib, ssl, sys
port, tls_port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = True

p = poplib.POP3("127.0.0.1", port, timeout=20)
caps = p.capa()
assert "STLS" in caps, caps
p.stls(context=ctx)
# The hostname check ran against the server name "127.0.0.1" (IP SAN).
caps = p.capa()
assert "STLS" not in caps, caps
assert "USER" in caps, caps
print("stls", p.sock.version())
p.user("alice"); p.pass_("secret")
print("stat", p.stat())
print("retr", b"\n".join(p.retr(1)[1]).decode())
p.quit()

s = poplib.POP3_SSL("127.0.0.1", tls_port, context=ctx, timeout=20)
caps = s.capa()
assert "STLS" not in caps, caps
s.user("alice"); s.pass_("secret")
print("ssl-stat", s.stat())
print("uidl", len(s.uidl()[1]))
try:
    s.stls(context=ctx)
    print("stls-again accepted")
except poplib.error_proto as e:
    print("stls-again refused", e)
s.quit()
"#;

#[test]
fn python_poplib_stls_and_pop3_ssl() {
    let setup = Setup::new();
    let server = setup.start();
    let script = setup.path("client.py");
    fs::write(&script, POPLIB).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(server.port.to_string())
        .arg(server.tls_port.to_string())
        .arg(&setup.pki.ca);
    let (ok, out, err) = run(&mut cmd, b"");
    assert!(ok, "{out}\n{err}");
    let total = crlf(MSG1).len() + crlf(MSG2).len();
    assert!(out.contains("stls TLSv1.3"), "{out}");
    assert!(out.contains(&format!("stat (2, {total})")), "{out}");
    assert!(out.contains("Hello over TLS."), "{out}");
    assert!(out.contains(&format!("ssl-stat (2, {total})")), "{out}");
    assert!(out.contains("uidl 2"), "{out}");
    // poplib refuses STLS itself when TLS is active, so nothing is sent; either way the
    // session must go on to QUIT (checked by ok above).
    assert!(out.contains("stls-again"), "{out}");
}

/// Run fetchmail once against `port`, delivering with an MDA into `out`.
fn fetchmail(setup: &Setup, port: u16, options: &str, out: &str) -> (bool, String, String) {
    let home = setup.path("fetchmail-home");
    fs::create_dir_all(&home).unwrap();
    let rc = home.join("fetchmailrc");
    let delivered = setup.path(out);
    fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 protocol pop3 port {port} timeout 20\n\
             user alice password secret is root here keep fetchall\n\
             {options} sslcertck sslcertfile {} sslcommonname localhost\n\
             mda \"cat >> {}\"\n",
            setup.pki.ca.display(),
            delivered.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("fetchmail");
    cmd.env("FETCHMAILHOME", &home)
        .env("HOME", &home)
        .args(["--nodetach", "--nosyslog", "-v", "-f"])
        .arg(&rc);
    run(&mut cmd, b"")
}

#[test]
fn fetchmail_ssl_and_stls() {
    let setup = Setup::new();
    let server = setup.start();

    let (ok, out, err) = fetchmail(&setup, server.tls_port, "ssl sslproto TLS1.2+", "ssl.mbox");
    assert!(ok, "{out}\n{err}");
    let got = fs::read_to_string(setup.path("ssl.mbox")).unwrap();
    assert!(got.contains("Hello over TLS."), "{got}");
    assert!(got.contains("Second message."), "{got}");

    // Without `ssl`, sslproto TLS1.2+ makes fetchmail require STLS.
    let (ok, out, err) = fetchmail(&setup, server.port, "sslproto TLS1.2+", "stls.mbox");
    assert!(ok, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("STLS"),
        "fetchmail did not use STLS:\n{out}\n{err}"
    );
    let got = fs::read_to_string(setup.path("stls.mbox")).unwrap();
    assert!(got.contains("Hello over TLS."), "{got}");
    // "keep": the spool is untouched.
    let spool = fs::read_to_string(setup.mailbox()).unwrap();
    assert!(spool.contains("Second message."));
}

fn mpop(setup: &Setup, port: u16, starttls: bool, out: &str) -> (bool, String, String) {
    let delivered = setup.path(out);
    fs::write(&delivered, "").unwrap();
    let conf = setup.path("mpoprc");
    fs::write(&conf, "").unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("mpop");
    cmd.arg("-C")
        .arg(&conf)
        .args(["--host=127.0.0.1", "--auth=user", "--user=alice"])
        .arg(format!("--port={port}"))
        .arg("--passwordeval=echo secret")
        .args(["--tls=on", "--tls-certcheck=on", "--keep=on"])
        .arg(format!(
            "--tls-starttls={}",
            if starttls { "on" } else { "off" }
        ))
        .arg(format!("--tls-trust-file={}", setup.pki.ca.display()))
        .arg(format!("--delivery=mbox,{}", delivered.display()))
        .arg(format!(
            "--uidls-file={}",
            setup.path(&format!("{out}.uidls")).display()
        ))
        .arg("--debug");
    run(&mut cmd, b"")
}

#[test]
fn mpop_gnutls_implicit_and_starttls() {
    let setup = Setup::new();
    let server = setup.start();
    for (port, starttls, out) in [
        (server.tls_port, false, "mpop-ssl.mbox"),
        (server.port, true, "mpop-stls.mbox"),
    ] {
        let (ok, stdout, stderr) = mpop(&setup, port, starttls, out);
        assert!(ok, "mpop starttls={starttls}:\n{stdout}\n{stderr}");
        if starttls {
            assert!(stdout.contains("STLS"), "{stdout}");
        }
        let got = fs::read_to_string(setup.path(out)).unwrap();
        assert!(got.contains("Hello over TLS."), "{got}");
        assert!(got.contains("Second message."), "{got}");
    }
}
