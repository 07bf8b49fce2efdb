//! The shipped `etc/inetd.conf` line under Debian's real `openbsd-inetd`, on a loopback port:
//! the line is taken from the file as an admin would copy it, only the service field (a free
//! `127.0.0.1:PORT` instead of `pop3`), the program path (the binary under test) and `-c CONF`
//! are changed. Sessions are driven with the raw client, curl and Python's poplib.
//!
//! Needs root (the line says `root`) and `/usr/sbin/inetd` (Debian package `openbsd-inetd`);
//! otherwise the tests print `SKIPPED: ...` and pass. Checks that need system users and
//! /dev/log (syslog facility, per-user credentials) are manual: docs/deployment-checks.md.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const INETD_CONF: &str = include_str!("../../etc/inetd.conf");

fn inetd() -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: inetd tests need root (the inetd.conf line runs mboxpopd as root)");
        return None;
    }
    let p = which("inetd").or_else(|| {
        let p = PathBuf::from("/usr/sbin/inetd");
        p.is_file().then_some(p)
    });
    if p.is_none() {
        eprintln!("SKIPPED: `inetd` is not installed (apt-get install openbsd-inetd)");
    }
    p
}

/// The active (uncommented) lines of etc/inetd.conf, split into fields.
fn shipped_lines() -> Vec<Vec<String>> {
    INETD_CONF
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn the_shipped_line_is_a_valid_pop3_nowait_root_line() {
    let lines = shipped_lines();
    assert_eq!(lines.len(), 1, "one active line expected: {lines:?}");
    let f = &lines[0];
    assert_eq!(
        &f[..5],
        ["pop3", "stream", "tcp", "nowait", "root"],
        "service, socket type, protocol, wait, user: {f:?}"
    );
    assert!(f[5].starts_with('/'), "absolute program path: {f:?}");
    assert_eq!(&f[6..], ["mboxpopd", "-i"], "argv: {f:?}");
    // The commented pop3s line must differ only by -T.
    let pop3s = INETD_CONF
        .lines()
        .find_map(|l| l.strip_prefix("#pop3s"))
        .expect("a commented pop3s line");
    let rest: Vec<&str> = pop3s.split_whitespace().collect();
    assert_eq!(
        rest,
        ["stream", "tcp", "nowait", "root", &f[5], "mboxpopd", "-i", "-T"]
    );
}

/// A running inetd with the shipped line adapted to `fixture`; stopped on drop.
fn start_inetd(inetd: &Path, f: &Fixture) -> Server {
    let conf = f.write_config("127.0.0.1:1");
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port("127.0.0.1");
        let mut fields = shipped_lines().remove(0);
        fields[0] = format!("127.0.0.1:{port}");
        fields[5] = binary().display().to_string();
        fields.push("-c".into());
        fields.push(conf.display().to_string());
        let inetd_conf = f.path().join(format!("inetd-{port}.conf"));
        fs::write(&inetd_conf, fields.join("\t") + "\n").expect("write inetd.conf");
        let log = f.path().join(format!("inetd-{port}.log"));
        let mut cmd = Command::new(inetd);
        // -d: stay in the foreground, debug output to stderr.
        cmd.arg("-d").arg(&inetd_conf);
        let server = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Server::spawn(cmd, &format!("127.0.0.1:{port}"), log.clone())
        }));
        match server {
            Ok(s) => return s,
            Err(_) => last = fs::read_to_string(&log).unwrap_or_default(),
        }
    }
    panic!("inetd did not come up: {last}");
}

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    f
}

#[test]
fn inetd_serves_retr_dele_quit_and_leaves_no_lock_files() {
    let Some(inetd) = inetd() else { return };
    let f = fixture();
    let server = start_inetd(&inetd, &f);

    let mut c = server.connect();
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 3 "), "{}", c.log());
    let body = c.ok_multi("RETR 2");
    assert_eq!(unstuff(&body), content(MSG2));
    c.ok("DELE 2");
    c.quit();

    // The commit happened in the inetd-spawned process: the mailbox lost exactly MSG2.
    f.wait_for_mbox("alice", &mbox(&[MSG1, MSG3]));
    assert!(f.spool_leftovers().is_empty(), "{:?}", f.spool_leftovers());

    // A second connection sees the committed state.
    let mut c = server.connect();
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    c.quit();
}

#[test]
fn inetd_with_curl_and_poplib() {
    let Some(inetd) = inetd() else { return };
    let f = fixture();
    let server = start_inetd(&inetd, &f);

    if require("curl").is_some() {
        assert_eq!(server.curl("1", &[]), content(MSG1));
    }
    if require("python3").is_some() {
        let script = format!(
            "import poplib\n\
             p = poplib.POP3('127.0.0.1', {port}, timeout=20)\n\
             p.user('alice'); p.pass_('secret')\n\
             n, size = p.stat(); assert n == 3, n\n\
             r = p.retr(3); assert r[1][2] == b'Subject: third', r\n\
             p.dele(3); p.dele(1)\n\
             print(p.quit().decode())\n",
            port = server.port()
        );
        let (st, out, err) = run(Command::new("python3").args(["-c", &script]));
        assert!(st.success(), "poplib: {err}");
        assert!(out.starts_with("+OK"), "{out}");
        f.wait_for_mbox("alice", &mbox(&[MSG2]));
        assert!(f.spool_leftovers().is_empty(), "{:?}", f.spool_leftovers());
    }
}

/// Under inetd, standard error is the client's socket. mboxpopd(8) promises that nothing but
/// the protocol is written there; a configuration error must reach the client as a POP3
/// `-ERR` line (the details go to syslog), not as `mboxpopd: /etc/mboxpopd.conf:2: ...`.
#[test]
fn a_config_error_under_inetd_reaches_the_client_as_err_only() {
    let Some(inetd) = inetd() else { return };
    let mut f = fixture();
    f.config("bogus_key = 1");
    let server = start_inetd(&inetd, &f);
    let c = server.connect_any();
    assert!(
        c.greeting.starts_with("-ERR"),
        "first line under inetd with a bad config: {:?}",
        c.greeting
    );
}
