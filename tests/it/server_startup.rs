//! Start-up of the real binary: usage errors, files that cannot be used, the ephemeral-port
//! listener, reloads that switch the passwd-file, and a reload that fails. (The basic `-t`,
//! `-V`, `-h` and port-in-use checks are in `protocol_standalone`.)

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::*;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1]));
    f
}

fn mboxpopd(
    args: &[&str],
    conf: Option<&std::path::Path>,
) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(binary());
    if let Some(c) = conf {
        cmd.arg("-c").arg(c);
    }
    run(cmd.args(args))
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    for args in [
        &["-i", "-d", "-f"][..],
        &["-T", "-d"],
        &[],
        &["-d", "stray"],
        &["-x"],
    ] {
        let (st, _out, err) = mboxpopd(args, None);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("mboxpopd: "), "{args:?}: {err}");
    }
    // With -i (and no -f) the socket is stdout and stderr: one -ERR line, details to syslog.
    for args in [&["-i", "-d"][..], &["-iT", "stray"], &["-i", "-x"]] {
        let (st, out, err) = mboxpopd(args, None);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert!(out.starts_with("-ERR [SYS/TEMP] "), "{args:?}: {out}");
        assert_eq!(err, "", "{args:?}");
    }
}

#[test]
fn a_missing_passwd_file_is_a_startup_error() {
    let mut f = fixture();
    let missing = f.path().join("no-such-passwd");
    f.config(&format!("passwd_file = {}", missing.display()));
    let conf = f.write_config("127.0.0.1:0");
    for mode in [&["-t"][..], &["-d", "-f"]] {
        let (st, _out, err) = mboxpopd(mode, Some(&conf));
        assert_eq!(st.code(), Some(1), "{mode:?}: {err}");
        assert!(err.contains("no-such-passwd"), "{mode:?}: {err}");
        assert!(err.lines().any(|l| l.starts_with("mboxpopd: ")), "{err}");
    }
}

#[test]
fn missing_tls_files_are_startup_errors() {
    let mut f = fixture();
    f.config(&format!(
        "tls_cert = {}",
        f.path().join("cert.pem").display()
    ));
    f.config(&format!("tls_key = {}", f.path().join("key.pem").display()));
    let conf = f.write_config("127.0.0.1:0");
    let (st, _out, err) = mboxpopd(&["-t"], Some(&conf));
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("cert.pem"), "{err}");
}

#[test]
fn a_config_error_in_inetd_mode_reaches_the_client_as_one_err_line_and_exits_1() {
    let mut f = fixture();
    f.config("timeout = whenever");
    let conf = f.write_config("127.0.0.1:0");
    // Under inetd stdout and stderr are the client's socket: one -ERR line, no details (the
    // config path and the message go to syslog).
    let (st, out, err) = mboxpopd(&["-i"], Some(&conf));
    assert_eq!(st.code(), Some(1));
    assert_eq!(
        out,
        "-ERR [SYS/TEMP] Server configuration error, contact the administrator\r\n"
    );
    assert_eq!(
        err, "",
        "nothing but the protocol line may reach the socket"
    );
    // With -f (tests, debugging over pipes) the details are on stderr.
    let (st, _out, err) = mboxpopd(&["-i", "-f"], Some(&conf));
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("timeout"), "{err}");
    assert!(err.contains("mboxpopd.conf:"), "{err}");
}

/// A daemon on `listen = 127.0.0.1:0`, and the port it reported.
struct Daemon {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(conf: &std::path::Path) -> Daemon {
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(conf)
            .args(["-d", "-f"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            port: 0,
            lines,
        };
        let line = d.wait_for("listening on 127.0.0.1:");
        let port = line.rsplit(':').next().and_then(|p| p.trim().parse().ok());
        d.port = port.expect("port in the log line");
        assert_ne!(d.port, 0);
        d
    }

    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// USER/PASS over a fresh connection; returns the PASS reply (and QUITs on success).
    fn session(&self, user: &str, pass: &str) -> String {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        let mut ask = |cmd: &str| {
            if !cmd.is_empty() {
                w.write_all(format!("{cmd}\r\n").as_bytes()).expect("send");
            }
            line.clear();
            r.read_line(&mut line).expect("reply");
            line.clone()
        };
        assert!(ask("").starts_with("+OK"));
        assert!(ask(&format!("USER {user}")).starts_with("+OK"));
        let reply = ask(&format!("PASS {pass}"));
        if reply.starts_with("+OK") {
            assert!(ask("QUIT").starts_with("+OK"));
        }
        reply
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn an_ephemeral_port_is_reported_and_sighup_switches_the_passwd_file() {
    let mut f = fixture();
    let conf = f.write_config("127.0.0.1:0");
    let mut d = Daemon::start(&conf);
    assert!(d.session("alice", "secret").starts_with("+OK"));

    // A second passwd-file where alice has another password; point the config at it.
    let other = f.path().join("passwd.new");
    fs::write(&other, "alice:{PLAIN}changed\n").expect("write");
    f.config(&format!("passwd_file = {}", other.display()));
    f.write_config("127.0.0.1:0");
    d.signal("HUP");
    d.wait_for("configuration reloaded");
    assert!(d.session("alice", "secret").starts_with("-ERR [AUTH]"));
    assert!(d.session("alice", "changed").starts_with("+OK"));

    // A broken file on the next SIGHUP keeps the running configuration.
    fs::write(&conf, "timeout = never\n").expect("break config");
    d.signal("HUP");
    d.wait_for("reload failed");
    assert!(d.session("alice", "changed").starts_with("+OK"));

    d.signal("TERM");
    let st = wait_timeout(&mut d.child, PATIENCE).expect("exit");
    assert!(st.success(), "{st}");
}
