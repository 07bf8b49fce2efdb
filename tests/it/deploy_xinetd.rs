//! The shipped `etc/xinetd.d/pop3` under Debian's real `xinetd`, on a loopback port: the
//! service block is taken from the file as an admin would copy it; only `port`, `bind` and
//! `type = UNLISTED` are added (the port is not 110), the program path becomes the binary
//! under test and `-c CONF` is appended to `server_args`.
//!
//! Needs root (the service says `user = root`) and `xinetd` (Debian package `xinetd`, which
//! conflicts with openbsd-inetd); otherwise the tests print `SKIPPED: ...` and pass.
//! `MBOXPOPD_XINETD=/path/to/xinetd` uses an unpacked copy (`apt-get download xinetd;
//! dpkg -x xinetd_*.deb DIR`) on machines that keep openbsd-inetd.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SERVICE: &str = include_str!("../../etc/xinetd.d/pop3");

fn xinetd() -> Option<PathBuf> {
    if !is_root() {
        eprintln!("SKIPPED: xinetd tests need root (the service runs mboxpopd as root)");
        return None;
    }
    let p = std::env::var_os("MBOXPOPD_XINETD")
        .map(PathBuf::from)
        .or_else(|| which("xinetd"))
        .or_else(|| {
            let p = PathBuf::from("/usr/sbin/xinetd");
            p.is_file().then_some(p)
        });
    if p.is_none() {
        eprintln!("SKIPPED: `xinetd` is not installed (apt-get install xinetd)");
    }
    p
}

/// The first (active) `service` block of etc/xinetd.d/pop3, as lines.
fn active_block() -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in SERVICE.lines() {
        if l.starts_with("service ") {
            inside = true;
        }
        if inside {
            out.push(l.to_string());
            if l.trim() == "}" {
                break;
            }
        }
    }
    out
}

fn attr<'a>(block: &'a [String], key: &str) -> Option<&'a str> {
    block.iter().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[test]
fn the_shipped_service_is_an_inetd_mode_root_stream_service() {
    let b = active_block();
    assert_eq!(b.first().map(String::as_str), Some("service pop3"), "{b:?}");
    assert_eq!(attr(&b, "disable"), Some("no"));
    assert_eq!(attr(&b, "socket_type"), Some("stream"));
    assert_eq!(attr(&b, "protocol"), Some("tcp"));
    assert_eq!(attr(&b, "wait"), Some("no"));
    assert_eq!(attr(&b, "user"), Some("root"));
    assert!(attr(&b, "server").is_some_and(|s| s.starts_with('/')));
    // xinetd passes server_args without argv[0] (unlike inetd.conf).
    assert_eq!(attr(&b, "server_args"), Some("-i"));
}

/// A running xinetd with the shipped service adapted to `fixture`; stopped on drop.
fn start_xinetd(xinetd: &Path, f: &Fixture) -> Server {
    let conf = f.write_config("127.0.0.1:1");
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port("127.0.0.1");
        let dir = f.path().join(format!("xinetd.d-{port}"));
        fs::create_dir_all(&dir).expect("xinetd.d");
        let mut block = Vec::new();
        for l in active_block() {
            let key = l.split_once('=').map(|(k, _)| k.trim().to_string());
            match key.as_deref() {
                Some("server") => block.push(format!("\tserver\t\t= {}", binary().display())),
                Some("server_args") => block.push(format!("{l} -c {}", conf.display())),
                _ => block.push(l.clone()),
            }
            if l.trim() == "{" {
                block.push(format!("\tport\t\t= {port}"));
                block.push("\tbind\t\t= 127.0.0.1".into());
                block.push("\ttype\t\t= UNLISTED".into());
            }
        }
        fs::write(dir.join("pop3"), block.join("\n") + "\n").expect("write service");
        let xlog = f.path().join(format!("xinetd-{port}.connections"));
        let main = f.path().join(format!("xinetd-{port}.conf"));
        fs::write(
            &main,
            format!(
                "defaults\n{{\n\tlog_type = FILE {}\n}}\nincludedir {}\n",
                xlog.display(),
                dir.display()
            ),
        )
        .expect("write xinetd.conf");
        let log = f.path().join(format!("xinetd-{port}.log"));
        let mut cmd = Command::new(xinetd);
        cmd.arg("-f")
            .arg(&main)
            .arg("-dontfork")
            .arg("-pidfile")
            .arg(f.path().join(format!("xinetd-{port}.pid")));
        let server = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Server::spawn(cmd, &format!("127.0.0.1:{port}"), log.clone())
        }));
        match server {
            Ok(s) => return s,
            Err(_) => last = fs::read_to_string(&log).unwrap_or_default(),
        }
    }
    panic!("xinetd did not come up: {last}");
}

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    f
}

#[test]
fn xinetd_serves_retr_dele_quit_and_leaves_no_lock_files() {
    let Some(xinetd) = xinetd() else { return };
    let f = fixture();
    let server = start_xinetd(&xinetd, &f);

    let mut c = server.connect();
    c.login("alice", "secret");
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    assert_eq!(unstuff(&c.ok_multi("RETR 2")), content(MSG2));
    c.ok("DELE 2");
    c.quit();
    f.wait_for_mbox("alice", &mbox(&[MSG1, MSG3]));
    assert!(f.spool_leftovers().is_empty(), "{:?}", f.spool_leftovers());

    if require("curl").is_some() {
        assert_eq!(server.curl("1", &[]), content(MSG1));
    }
    if require("python3").is_some() {
        let script = format!(
            "import poplib\n\
             p = poplib.POP3('127.0.0.1', {port}, timeout=20)\n\
             p.user('alice'); p.pass_('secret')\n\
             n, size = p.stat(); assert n == 2, n\n\
             p.dele(1)\n\
             print(p.quit().decode())\n",
            port = server.port()
        );
        let (st, out, err) = run(Command::new("python3").args(["-c", &script]));
        assert!(st.success(), "poplib: {err}");
        assert!(out.starts_with("+OK"), "{out}");
        f.wait_for_mbox("alice", &mbox(&[MSG3]));
        assert!(f.spool_leftovers().is_empty(), "{:?}", f.spool_leftovers());
    }
}
