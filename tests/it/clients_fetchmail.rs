//! fetchmail against the standalone daemon: keep, delete, UIDL-based "new mail only", and
//! delivery through an MDA that stores every message byte for byte.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

struct Fetchmail {
    home: PathBuf,
    out: PathBuf,
    rc: PathBuf,
}

impl Fetchmail {
    /// A private fetchmail home (rc file, .fetchids) and an MDA script that writes each
    /// message to `out/NNN` in delivery order.
    fn new(f: &Fixture, server: &Server, keep: bool) -> Fetchmail {
        let target = format!(
            "{host} with proto POP3 port {port}",
            host = server.host().trim_matches(|c| c == '[' || c == ']'),
            port = server.port(),
        );
        Self::with_target(f, &target, keep)
    }

    /// fetchmail's `plugin`: it starts `mboxpopd -i` itself and speaks POP3 over the
    /// program's stdin and stdout, exactly as over an inetd connection.
    /// (Named by address: minimal systems may not resolve "localhost".)
    fn plugin(f: &Fixture, keep: bool) -> Fetchmail {
        let conf = f.write_config("127.0.0.1:1");
        let target = format!(
            "127.0.0.1 with proto POP3 plugin \"{} -c {} -i\"",
            binary().display(),
            conf.display()
        );
        Self::with_target(f, &target, keep)
    }

    fn with_target(f: &Fixture, target: &str, keep: bool) -> Fetchmail {
        let home = f.path().join("fetchmail");
        let out = f.path().join("delivered");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&out).unwrap();
        let mda = home.join("mda.sh");
        fs::write(
            &mda,
            format!(
                "#!/bin/sh\nn=$(ls '{out}' | wc -l)\nexec cat > '{out}'/$(printf %03d \"$n\")\n",
                out = out.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&mda, fs::Permissions::from_mode(0o755)).unwrap();
        let rc = home.join("fetchmailrc");
        // sslproto "": no opportunistic STLS attempt (fetchmail 6.4 tries it by default).
        fs::write(
            &rc,
            format!(
                "poll {target} auth password uidl\n  \
                 user alice there with password \"secret\" is {me} here\n  \
                 {keep} sslproto \"\"\n  \
                 mda \"/bin/sh {mda}\"\n",
                me = whoami(),
                keep = if keep { "keep" } else { "nokeep" },
                mda = mda.display(),
            ),
        )
        .unwrap();
        // fetchmail refuses an rc file others can read.
        fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
        Fetchmail { home, out, rc }
    }

    /// Runs one poll; returns fetchmail's exit code (0: mail fetched, 1: no mail).
    fn poll(&self, server: Option<&Server>) -> i32 {
        let (st, out, err) = run(Command::new("fetchmail")
            .arg("-f")
            .arg(&self.rc)
            .args(["--nodetach", "--nosyslog", "--invisible", "-v"])
            // As root fetchmail's default pid file is global (/var/run): tests run in parallel.
            .arg("--pidfile")
            .arg(self.home.join("fetchmail.pid"))
            .env("HOME", &self.home)
            .env("FETCHMAILHOME", &self.home));
        let code = st.code().expect("fetchmail exit code");
        assert!(
            code == 0 || code == 1,
            "fetchmail failed ({code}): {out}{err}\nlog:\n{}",
            server.map(Server::log).unwrap_or_default()
        );
        code
    }

    fn delivered(&self) -> Vec<Vec<u8>> {
        read_dir_sorted(&self.out)
    }
}

fn whoami() -> String {
    let (_, out, _) = run(Command::new("id").arg("-un"));
    out.trim().to_string()
}

fn read_dir_sorted(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// fetchmail hands the MDA the message with LF line ends, followed by one empty line
/// (6.4 does; older versions may not).
fn check_delivered(got: &[Vec<u8>], want: &[&str]) {
    assert_eq!(got.len(), want.len(), "messages delivered");
    for (g, w) in got.iter().zip(want) {
        let g = show(g);
        if g != format!("{w}\n") {
            assert_eq!(g, *w);
        }
    }
}

#[test]
fn fetchmail_keep_then_only_new_mail() {
    if require("fetchmail").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let fm = Fetchmail::new(&f, &server, true);
    assert_eq!(fm.poll(Some(&server)), 0);
    check_delivered(&fm.delivered(), &[MSG1, MSG2, MSG3]);
    assert_eq!(
        f.read_mbox("alice"),
        mbox(&[MSG1, MSG2, MSG3]),
        "keep deleted mail"
    );
    // The UIDLs are stable: a second poll fetches nothing...
    assert_eq!(fm.poll(Some(&server)), 1);
    assert_eq!(fm.delivered().len(), 3);
    // ...until new mail arrives.
    let new = "From: eve@example.org\nSubject: new\n\nfresh\n";
    deliver(&f.mailbox("alice"), new);
    assert_eq!(fm.poll(Some(&server)), 0);
    check_delivered(&fm.delivered(), &[MSG1, MSG2, MSG3, new]);
}

#[test]
fn fetchmail_fetch_and_delete() {
    if require("fetchmail").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let fm = Fetchmail::new(&f, &server, false);
    assert_eq!(fm.poll(Some(&server)), 0);
    check_delivered(&fm.delivered(), &[MSG1, MSG2, MSG3]);
    assert_eq!(show(&f.read_mbox("alice")), "", "fetched mail not deleted");
    assert_eq!(fm.poll(Some(&server)), 1);
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn fetchmail_plugin_runs_inetd_mode() {
    if require("fetchmail").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let fm = Fetchmail::plugin(&f, false);
    assert_eq!(fm.poll(None), 0);
    check_delivered(&fm.delivered(), &[MSG1, MSG2, MSG3]);
    assert_eq!(show(&f.read_mbox("alice")), "", "fetched mail not deleted");
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}
