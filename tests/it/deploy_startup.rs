//! Start-up errors as an admin meets them, in each mode that reads the configuration
//! (`-t`, `-d`, `-i`): an unknown key, a missing passwd-file, a missing certificate, and (for
//! `-d`) a port in use. Each must exit 1 and a daemon must not be left running. `-t` and `-d`
//! print one line on stderr that names the culprit; under `-i` stdout and stderr are the
//! client's socket, so the client gets one `-ERR` line and the details go to syslog.

use crate::common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::*;

fn fixture() -> Fixture {
    Fixture::new()
}

/// Runs `mboxpopd MODE -c CONF` with a deadline; returns (exit code, stdout, stderr).
fn start(mode: &str, conf: &std::path::Path) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary())
        .arg(mode)
        .arg("-c")
        .arg(conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mboxpopd");
    let st = wait_timeout(&mut child, Duration::from_secs(10));
    if st.is_none() {
        child.kill().ok();
        child.wait().ok();
        panic!("mboxpopd {mode} with a broken configuration kept running");
    }
    let out = child.wait_with_output().expect("output");
    (
        st.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The error lines on stderr (warnings, such as the cleartext-password one or a daemon's
/// "syslog unavailable" when no syslog daemon runs, are not errors).
fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("mboxpopd: warning:") && !l.contains(" WARN ] "))
        .collect()
}

fn check(conf: &std::path::Path, modes: &[&str], culprit: &str) {
    for mode in modes {
        let (code, out, err) = start(mode, conf);
        assert_eq!(code, Some(1), "{mode}: exit code; stderr: {err}");
        assert!(
            !out.contains("+OK"),
            "{mode}: nothing may look like a greeting: {out}"
        );
        if *mode == "-i" {
            assert_eq!(
                out, "-ERR [SYS/TEMP] Server configuration error, contact the administrator\r\n",
                "{mode}: the client's only line"
            );
            assert_eq!(err, "", "{mode}: nothing else may reach the socket");
            continue;
        }
        let e = errors(&err);
        assert_eq!(e.len(), 1, "{mode}: one error line expected: {err:?}");
        assert!(e[0].starts_with("mboxpopd: "), "{mode}: {err:?}");
        assert!(
            e[0].contains(culprit),
            "{mode}: {culprit} not named: {err:?}"
        );
    }
}

#[test]
fn unknown_key() {
    let mut f = fixture();
    f.config("bogus_key = 1");
    let conf = f.write_config("127.0.0.1:1");
    check(&conf, &["-t", "-d", "-i"], "bogus_key");
    check(&conf, &["-t"], "mboxpopd.conf:");
}

#[test]
fn missing_passwd_file() {
    let mut f = fixture();
    let missing = f.path().join("no-such-passwd");
    f.config(&format!("passwd_file = {}", missing.display()));
    let conf = f.write_config("127.0.0.1:1");
    check(&conf, &["-t", "-d", "-i"], "no-such-passwd");
}

#[test]
fn missing_certificate() {
    let mut f = fixture();
    let cert = f.path().join("no-such-cert.pem");
    let key = f.path().join("no-such-key.pem");
    f.config(&format!("tls_cert = {}", cert.display()));
    f.config(&format!("tls_key = {}", key.display()));
    let conf = f.write_config("127.0.0.1:1");
    check(&conf, &["-t", "-d", "-i"], "no-such-cert.pem");
}

#[test]
fn port_in_use() {
    let f = fixture();
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let conf = f.write_config(&addr);
    check(&conf, &["-d"], &addr);
}
