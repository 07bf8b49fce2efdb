//! The shipped systemd units (etc/systemd/*) pass `systemd-analyze verify` (syntax, known
//! keys, executable paths) and say what the README and mboxpopd(8) promise: an inetd-style
//! socket with Accept=yes whose template service runs `mboxpopd -i` on the connection, and a
//! standalone service running `mboxpopd -d -f`.
//!
//! The executable path in copies of the units is pointed at the binary under test (verify
//! checks that ExecStart= exists). Needs `systemd-analyze` (Debian package `systemd`; PID 1
//! need not be systemd); otherwise it prints `SKIPPED: ...` and passes.

use crate::common;

use std::fs;
use std::process::Command;

use common::*;

const SERVICE: &str = include_str!("../../etc/systemd/mboxpopd.service");
const SOCKET: &str = include_str!("../../etc/systemd/mboxpopd.socket");
const TEMPLATE: &str = include_str!("../../etc/systemd/mboxpopd@.service");
const SHIPPED_BIN: &str = "/usr/local/sbin/mboxpopd";

fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn units_say_what_the_docs_promise() {
    assert_eq!(values(SOCKET, "Accept"), ["yes"]);
    assert_eq!(values(SOCKET, "ListenStream"), ["110"]);
    assert_eq!(
        values(TEMPLATE, "ExecStart"),
        [format!("{SHIPPED_BIN} -i -c /etc/mboxpopd.conf")]
    );
    assert_eq!(values(TEMPLATE, "StandardInput"), ["socket"]);
    assert_eq!(values(TEMPLATE, "StandardOutput"), ["socket"]);
    // stderr must not be the client's socket.
    assert_ne!(values(TEMPLATE, "StandardError"), ["socket"]);
    assert_eq!(
        values(SERVICE, "ExecStart"),
        [format!("{SHIPPED_BIN} -d -f -c /etc/mboxpopd.conf")]
    );
    assert_eq!(
        values(SERVICE, "ExecStartPre"),
        [format!("{SHIPPED_BIN} -t -c /etc/mboxpopd.conf")]
    );
    // ProtectHome= would make %h/Mailbox setups fail; /var/mail must stay writable.
    for unit in [SERVICE, TEMPLATE] {
        assert!(values(unit, "ProtectHome").is_empty());
        assert!(!values(unit, "ProtectSystem").contains(&"strict"));
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let Some(analyze) = require("systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = binary().display().to_string();
    for (name, text) in [
        ("mboxpopd.service", SERVICE),
        ("mboxpopd.socket", SOCKET),
        ("mboxpopd@.service", TEMPLATE),
    ] {
        fs::write(dir.path().join(name), text.replace(SHIPPED_BIN, &bin)).expect("write unit");
    }
    for unit in ["mboxpopd.socket", "mboxpopd.service", "mboxpopd@.service"] {
        let (st, out, err) = run(Command::new(&analyze)
            .current_dir(dir.path())
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .args(["verify", "--man=no"])
            .arg(dir.path().join(unit)));
        // Lines about the host (no running systemd, unrelated system units) are not ours.
        let ours: Vec<&str> = err
            .lines()
            .chain(out.lines())
            .filter(|l| l.contains("mboxpopd"))
            .collect();
        assert!(
            st.success() && ours.is_empty(),
            "verify {unit}: {st}\n{out}\n{err}"
        );
    }
}
