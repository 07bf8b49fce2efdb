//! The admin's side of the binary: `mboxpopd user` and `mboxpopd pw` driving a passwd-file
//! that a running daemon serves, the same behaviour with or without a config file, `-t`'s
//! list of changed settings, the uid warning, and the shipped fail2ban filter against log
//! lines the daemon wrote.

use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// `mboxpopd ARGS` with `stdin` as its standard input.
fn admin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mboxpopd");
    // A command that refuses its arguments exits without reading stdin: EPIPE is expected.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "feed stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        show(&out.stdout),
        show(&out.stderr)
    );
    show(&out.stdout)
}

fn curl_login(server: &Server, user: &str, pass: &str) -> bool {
    // The fixture's {PLAIN} users make the server offer CRAM-MD5, which curl prefers and
    // which cannot work for a hashed password: ask for PLAIN.
    Command::new("curl")
        .args([
            "--silent",
            "--max-time",
            "30",
            "--login-options",
            "AUTH=PLAIN",
        ])
        .arg(format!("pop3://{user}:{pass}@{}/", server.addr))
        .output()
        .expect("curl")
        .status
        .success()
}

#[test]
fn add_log_in_change_password_delete() {
    let f = Fixture::new();
    let server = f.standalone();
    let conf = f.path().join("mboxpopd.conf");
    let conf = conf.to_str().expect("utf-8 path");
    let passwd = f.path().join("passwd");
    if is_root() {
        // Owner and mode survive every rewrite.
        std::os::unix::fs::chown(&passwd, Some(65534), Some(65534)).expect("chown");
    }
    fs::set_permissions(&passwd, fs::Permissions::from_mode(0o640)).expect("chmod");

    let out = admin(
        &["user", "add", "carol", "-c", conf, "--stdin"],
        "tigerlily\n",
    );
    ok(&out);
    let text = fs::read_to_string(&passwd).expect("read");
    let line = text
        .lines()
        .find(|l| l.starts_with("carol:"))
        .expect("added");
    assert!(line.starts_with("carol:$y$j9T$"), "{line}");
    let meta = fs::metadata(&passwd).expect("meta");
    assert_eq!(meta.mode() & 0o777, 0o640);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    f.write_mbox("carol", &mbox(&[MSG1]));
    // The running daemon picks the change up without a restart.
    assert!(
        curl_login(&server, "carol", "tigerlily"),
        "{}",
        server.log()
    );

    ok(&admin(
        &[
            "user",
            "passwd",
            "carol",
            "-c",
            conf,
            "--stdin",
            "-s",
            "sha512-crypt",
        ],
        "n3w\n",
    ));
    let text = fs::read_to_string(&passwd).expect("read");
    assert!(text.contains("carol:$6$"), "{text}");
    assert!(!curl_login(&server, "carol", "tigerlily"));
    assert!(curl_login(&server, "carol", "n3w"), "{}", server.log());

    let listed = ok(&admin(&["user", "list", "-c", conf], ""));
    assert_eq!(
        listed
            .lines()
            .map(|l| l.split('\t').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );

    ok(&admin(&["user", "del", "carol", "-c", conf], ""));
    assert!(!fs::read_to_string(&passwd).expect("read").contains("carol"));
    assert!(!curl_login(&server, "carol", "n3w"));
    // The others are untouched.
    assert!(curl_login(&server, "alice", "secret"));
    let leftovers: Vec<String> = fs::read_dir(f.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn add_refuses_bad_names_duplicates_and_bad_fields() {
    let f = Fixture::new();
    let conf = f.write_config("127.0.0.1:1");
    let conf = conf.to_str().expect("utf-8 path");
    let before = fs::read(f.path().join("passwd")).expect("read");
    for (args, want) in [
        (vec!["user", "add", "alice"], "already exists"),
        (vec!["user", "add", "../x"], "invalid user name"),
        (vec!["user", "add", "a b"], "invalid user name"),
        (vec!["user", "add", "d", "--uid", "0"], "root"),
        (vec!["user", "add", "d", "--home", "rel/dir"], "absolute"),
        (vec!["user", "add", "d", "--mailbox", "/x y"], "blanks"),
        (vec!["user", "add", "d", "-s", "des"], "unknown scheme"),
        (vec!["user", "passwd", "nobody-here"], "no user"),
        (vec!["user", "del", "nobody-here"], "no user"),
        (vec!["user", "frobnicate", "x"], "unknown action"),
    ] {
        let mut args = args.clone();
        args.extend(["-c", conf]);
        if matches!(args[1], "add" | "passwd") {
            args.push("--stdin");
        }
        let out = admin(&args, "pw\n");
        assert!(!out.status.success(), "{args:?}");
        assert!(
            show(&out.stderr).contains(want),
            "{args:?}: {}",
            show(&out.stderr)
        );
    }
    // An empty password is refused too.
    let out = admin(&["user", "add", "d", "-c", conf, "--stdin"], "\n");
    assert!(
        show(&out.stderr).contains("empty password"),
        "{}",
        show(&out.stderr)
    );
    assert_eq!(fs::read(f.path().join("passwd")).expect("read"), before);
    // Optional fields end up where the server reads them.
    ok(&admin(
        &[
            "user",
            "add",
            "dave",
            "-c",
            conf,
            "--stdin",
            "--uid",
            "1234",
            "--gid",
            "100",
            "--home",
            "/home/dave",
            "--mailbox",
            "/var/mail/dave",
        ],
        "pw\n",
    ));
    let listed = ok(&admin(&["user", "list", "-c", conf], ""));
    assert!(
        listed.contains("dave\tuid=1234\tgid=100\thome=/home/dave\tmailbox=/var/mail/dave"),
        "{listed}"
    );
}

#[test]
fn concurrent_adds_lose_nothing() {
    let f = Fixture::new();
    let conf = f.write_config("127.0.0.1:1");
    let conf = conf.to_str().expect("utf-8 path").to_string();
    let n = 8;
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut c = Command::new(binary())
                .args([
                    "user",
                    "add",
                    &format!("user{i}"),
                    "-c",
                    &conf,
                    "--stdin",
                    "-s",
                    "sha512-crypt",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"pw\n")
                .expect("write");
            c
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", show(&out.stderr));
    }
    let listed = ok(&admin(&["user", "list", "-c", &conf], ""));
    let mut names: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    names.sort();
    let mut want = vec!["alice".to_string(), "bob".to_string()];
    want.extend((0..n).map(|i| format!("user{i}")));
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn pw_prints_a_hash_and_system_auth_explains() {
    let out = admin(&["pw", "--stdin"], "secret\n");
    let hash = ok(&out);
    assert!(
        hash.starts_with("$y$j9T$") && hash.ends_with('\n'),
        "{hash}"
    );
    let out = admin(&["pw", "--stdin", "-s", "bcrypt"], "secret\n");
    assert!(ok(&out).starts_with("$2"));
    // The hash works in a passwd-file.
    let mut f = Fixture::new();
    f.passwd_line(&format!("erin:{}", hash.trim()));
    let mut c = f.inetd();
    c.login("erin", "secret");
    c.quit();

    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("system.conf");
    fs::write(&conf, "auth = system\n").expect("write");
    let out = admin(
        &[
            "user",
            "add",
            "x",
            "-c",
            conf.to_str().expect("path"),
            "--stdin",
        ],
        "pw\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        show(&out.stderr).contains("useradd"),
        "{}",
        show(&out.stderr)
    );
}

/// `-t` with `args`, returning (stdout, stderr) with the config's origin taken out.
fn check(args: &[&str]) -> (String, String) {
    let out = Command::new(binary())
        .arg("-t")
        .args(args)
        .output()
        .expect("-t");
    let stdout = show(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("mboxpopd: configuration OK"))
        .collect::<Vec<_>>()
        .join("\n");
    (stdout, show(&out.stderr))
}

#[test]
fn no_config_file_behaves_like_an_empty_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.conf");
    fs::write(&empty, "").expect("write");
    let with_empty = check(&["-c", empty.to_str().expect("path")]);
    assert!(
        with_empty.1.contains("passwords travel in cleartext"),
        "{with_empty:?}"
    );
    assert!(
        with_empty.0.contains("all settings are the defaults"),
        "{with_empty:?}"
    );
    if Path::new("/etc/mboxpopd.conf").exists() {
        println!("SKIPPED the no-file half: /etc/mboxpopd.conf exists on this machine");
    } else {
        assert_eq!(check(&[]), with_empty);
    }

    // A remote client (named by a PROXY header over inetd's pipes) is offered USER either way.
    let header = b"PROXY TCP4 192.0.2.44 127.0.0.1 4444 110\r\n";
    let mut runs = vec![vec!["-c", empty.to_str().expect("path")]];
    if !Path::new("/etc/mboxpopd.conf").exists() {
        runs.push(Vec::new());
    }
    for conf in runs {
        let mut child = Command::new(binary())
            .args(&conf)
            .args(["-i", "-f", "-P"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(header).expect("header");
        input.write_all(b"CAPA\r\nQUIT\r\n").expect("commands");
        drop(input);
        let out = child.wait_with_output().expect("wait");
        let text = show(&out.stdout);
        assert!(text.contains("\r\nUSER\r\n"), "{conf:?}: {text}");
    }

    // `-t` lists what differs from the defaults.
    let conf = dir.path().join("some.conf");
    fs::write(&conf, "timeout = 15m\nmax_connections = 50\napop = no\n").expect("write");
    let (stdout, _) = check(&["-c", conf.to_str().expect("path")]);
    assert_eq!(
        stdout,
        "# settings that differ from the defaults:\ntimeout = 900s\nmax_connections = 50"
    );
}

#[test]
fn the_uid_warning_names_only_users_without_one() {
    if !is_root() {
        println!("SKIPPED: the warning is about running as root");
        return;
    }
    let f = Fixture::new();
    let mut c = f.inetd();
    c.quit();
    c.wait();
    let log = c.log();
    assert!(
        log.contains("virtual users without a uid will be served as root: alice, bob"),
        "{log}"
    );
    let mut f = Fixture::new();
    f.config("mailbox = /nonexistent/%u");
    // Every entry with a uid: no warning.
    let passwd = "alice:{PLAIN}secret:1001:1001\n";
    let conf = f.write_config("127.0.0.1:1");
    fs::write(f.path().join("passwd"), passwd).expect("write");
    let out = Command::new(binary())
        .args(["-c", conf.to_str().expect("path"), "-i", "-f"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert!(
        !show(&out.stderr).contains("without a uid"),
        "{}",
        show(&out.stderr)
    );
}

#[test]
fn fail2ban_regex_matches_what_the_daemon_logs() {
    let Some(regex) = require("fail2ban-regex") else {
        println!("SKIPPED: fail2ban-regex not installed");
        return;
    };
    let common_conf = Path::new("/etc/fail2ban/filter.d/common.conf");
    if !common_conf.exists() {
        println!("SKIPPED: /etc/fail2ban/filter.d/common.conf missing");
        return;
    }
    let mut f = Fixture::new();
    let proxy = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    f.set_config("proxy_listen", &proxy)
        .set_config("proxy_trusted_networks", "127.0.0.1");
    let server = f.standalone();
    for (src, user) in [
        ("203.0.113.1", "alice"),
        ("203.0.113.2", "nobody"),
        // A user name that tries to plant another address (SASL PLAIN allows blanks).
        ("203.0.113.3", "x peer=198.51.100.99"),
    ] {
        use base64::Engine;
        let header = format!("PROXY TCP4 {src} 127.0.0.1 1000 110\r\n");
        let mut c = server.connect_preamble(&proxy, header.as_bytes());
        let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0wrong"));
        let r = c.cmd(&format!("AUTH PLAIN {plain}"));
        assert!(r.starts_with("-ERR [AUTH]"), "{r}");
        c.quit();
    }
    assert!(server.wait_for_log("peer=203.0.113.3 user="));
    // The filter next to Debian's common.conf, which it includes.
    let filters = f.path().join("filter.d");
    fs::create_dir(&filters).expect("mkdir");
    fs::copy(common_conf, filters.join("common.conf")).expect("copy");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/fail2ban/filter.d/mboxpopd.conf");
    fs::copy(&shipped, filters.join("mboxpopd.conf")).expect("copy filter");
    let log = f.path().join("daemon.log");
    fs::write(&log, server.log()).expect("log copy");
    let (st, out, err) = run(Command::new(regex)
        .arg("--print-all-matched")
        .arg(&log)
        .arg(filters.join("mboxpopd.conf")));
    assert!(st.success(), "{out}{err}");
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert!(out.contains(ip), "{ip} not matched:\n{out}");
    }
    assert!(
        !out.contains("198.51.100.99  "),
        "forged address matched:\n{out}"
    );
    assert!(out.contains("3 matched"), "{out}");
}
