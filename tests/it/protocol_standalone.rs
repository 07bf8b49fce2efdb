//! Standalone mode (`-d`) over real loopback sockets: sessions, connection limits, signals,
//! reloads, start-up errors and response latency.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    f.write_mbox("bob", &mbox(&[MSG3]));
    f
}

#[test]
fn a_session_over_ipv4() {
    let f = fixture();
    let server = f.standalone();
    let mut c = server.connect();
    c.login("alice", "secret");
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG2)));
    c.ok("DELE 1");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG2, MSG3])));
}

#[test]
fn a_session_over_ipv6() {
    if !have_ipv6() {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    let f = fixture();
    let server = f.standalone_on("[::1]");
    let mut c = server.connect();
    c.login("bob", "hunter2");
    assert_eq!(show(&c.ok_multi("RETR 1")), show(&wire(MSG3)));
    c.quit();
}

#[test]
fn parallel_sessions_of_different_users() {
    let f = fixture();
    let server = f.standalone();
    let mut a = server.connect();
    let mut b = server.connect();
    a.login("alice", "secret");
    b.login("bob", "hunter2");
    assert_eq!(show(&b.ok_multi("RETR 1")), show(&wire(MSG3)));
    assert_eq!(show(&a.ok_multi("RETR 1")), show(&wire(MSG1)));
    let mut second_alice = server.connect();
    second_alice.ok("USER alice");
    assert!(second_alice.err("PASS secret").starts_with("-ERR [IN-USE]"));
    a.quit();
    b.quit();
}

/// Opens a session that got its `+OK` greeting, retrying while the daemon still counts a
/// connection that is just going away (the start-up probe, a previous test step).
fn admitted(server: &Server) -> Conn {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let c = server.connect_any();
        if c.greeting.starts_with("+OK") {
            return c;
        }
        assert!(Instant::now() < deadline, "never admitted: {}", c.greeting);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn per_ip_connection_limit() {
    let mut f = fixture();
    f.config("max_connections_per_ip = 2");
    let server = f.standalone();
    let mut one = admitted(&server);
    let _two = admitted(&server);
    let mut three = server.connect_any();
    assert!(
        three.greeting.starts_with("-ERR [SYS/TEMP]"),
        "third connection from one address: {}",
        three.greeting
    );
    three.expect_eof();
    // Sessions already admitted are unaffected.
    one.login("alice", "secret");
    one.quit();
    // A slot is free again.
    let mut again = admitted(&server);
    again.login("bob", "hunter2");
    again.quit();
}

#[test]
fn global_connection_limit() {
    let mut f = fixture();
    f.config("max_connections = 1");
    let server = f.standalone();
    let _one = admitted(&server);
    let mut two = server.connect_any();
    assert!(
        two.greeting.starts_with("-ERR [SYS/TEMP]"),
        "{}",
        two.greeting
    );
    two.expect_eof();
}

#[test]
fn sigterm_ends_sessions_without_committing() {
    let f = fixture();
    let original = f.read_mbox("alice");
    let mut server = f.standalone();
    let mut c = server.connect();
    c.login("alice", "secret");
    c.ok("DELE 1");
    c.ok("DELE 2");
    let st = server.stop();
    assert!(st.success(), "exit status after SIGTERM: {st}");
    // The session was ended with one last -ERR line, not committed.
    let mut last = Vec::new();
    while let Some(l) = c.raw_line() {
        assert!(l.starts_with(b"-ERR"), "{}", show(&l));
        last.push(show(&l));
    }
    assert_eq!(
        last,
        ["-ERR [SYS/TEMP] Server shutting down, no changes made\r\n"],
        "the client is told"
    );
    assert_eq!(show(&f.read_mbox("alice")), show(&original));
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn sighup_reloads_the_configuration() {
    let mut f = fixture();
    let server = f.standalone();
    let mut c = server.connect();
    c.ok("CAPA");
    assert!(!c.multi_lines().iter().any(|l| l.starts_with("LOGIN-DELAY")));
    c.quit();
    f.config("login_delay = 120");
    f.write_config(&server.addr);
    server.signal("HUP");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut c = server.connect();
        c.ok("CAPA");
        let caps = c.multi_lines();
        c.quit();
        if caps.iter().any(|l| l == "LOGIN-DELAY 120") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload: {caps:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn passwd_file_changes_apply_without_restart() {
    let mut f = fixture();
    let server = f.standalone();
    let mut c = server.connect();
    c.ok("USER carol");
    assert!(c.err("PASS pw").starts_with("-ERR [AUTH]"));
    c.quit();
    f.passwd_line("carol:{PLAIN}pw");
    f.write_config(&server.addr);
    let mut c = server.connect();
    c.login("carol", "pw");
    assert_eq!(c.ok("STAT"), "+OK 0 0");
    c.quit();
}

#[test]
fn many_small_retrs_do_not_stall() {
    // Separate writes for "+OK", the message and "." meet Nagle and delayed ACKs and cost
    // about 40 ms per RETR; one write (or TCP_NODELAY) costs well under 1 ms on loopback.
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1]));
    let server = f.standalone();
    let mut c = server.connect();
    c.login("alice", "secret");
    let t = Instant::now();
    for _ in 0..100 {
        assert_eq!(c.ok_multi("RETR 1"), wire(MSG1));
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "100 RETRs took {took:?}");
    c.quit();
}

fn mboxpopd(f: &Fixture, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let conf = f.write_config("127.0.0.1:1");
    run(Command::new(binary()).arg("-c").arg(conf).args(args))
}

#[test]
fn check_config_accepts_a_good_file() {
    let f = fixture();
    let (st, _out, err) = mboxpopd(&f, &["-t"]);
    assert!(st.success(), "-t refused a good config: {err}");
}

#[test]
fn check_config_names_file_and_line_of_an_error() {
    let mut f = fixture();
    f.config("no_such_key = 1");
    let (st, out, err) = mboxpopd(&f, &["-t"]);
    assert!(!st.success(), "unknown key accepted");
    let msg = format!("{out}{err}");
    assert!(msg.contains("mboxpopd.conf"), "no file name in: {msg}");
    assert!(msg.contains("no_such_key"), "key not named in: {msg}");
    let written = std::fs::read_to_string(f.path().join("mboxpopd.conf")).unwrap();
    let lineno = 1 + written
        .lines()
        .position(|l| l.starts_with("no_such_key"))
        .unwrap();
    assert!(
        msg.contains(&lineno.to_string()),
        "line {lineno} not named in: {msg}"
    );
}

#[test]
fn bad_values_are_startup_errors() {
    for line in [
        "timeout = soon",
        "auth = ldap",
        "listen = not-an-address",
        "apop = maybe",
        "uidl_format = random",
    ] {
        let mut f = fixture();
        f.config(line);
        let (st, out, err) = mboxpopd(&f, &["-t"]);
        assert!(!st.success(), "{line:?} accepted: {out}{err}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let f = fixture();
    let conf = f.write_config(&addr);
    let (st, _out, err) = run(Command::new(binary())
        .arg("-c")
        .arg(conf)
        .args(["-d", "-f"]));
    assert!(!st.success(), "started although {addr} is taken");
    assert!(
        err.contains(&addr) || err.to_lowercase().contains("in use"),
        "unclear error: {err}"
    );
}

#[test]
fn a_missing_config_file_is_an_error() {
    let f = fixture();
    let (st, _out, err) = run(Command::new(binary())
        .arg("-c")
        .arg(f.path().join("nope.conf"))
        .arg("-t"));
    assert!(!st.success());
    assert!(err.contains("nope.conf"), "{err}");
}

#[test]
fn version_and_help() {
    let (st, out, err) = run(Command::new(binary()).arg("-V"));
    assert!(st.success());
    assert!(
        format!("{out}{err}").contains(env!("CARGO_PKG_VERSION")),
        "{out}{err}"
    );
    let (st, out, err) = run(Command::new(binary()).arg("-h"));
    assert!(st.success());
    let help = format!("{out}{err}");
    for flag in ["-c", "-i", "-d", "-f", "-t", "-V"] {
        assert!(help.contains(flag), "help lacks {flag}: {help}");
    }
    let (st, _out, _err) = run(Command::new(binary()).arg("--no-such-flag"));
    assert!(!st.success());
}

#[test]
fn every_value_shown_in_the_example_config_is_accepted() {
    // etc/mboxpopd.conf shows every key commented out with its default or an example value;
    // uncommented, the file must still pass `mboxpopd -t`. Keys that name files or accounts
    // of the installed system are pointed at the test fixture instead.
    let f = fixture();
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/mboxpopd.conf"),
    )
    .unwrap();
    let passwd = f.path().join("passwd");
    std::fs::write(&passwd, "alice:{PLAIN}secret\n").unwrap();
    let mut conf = String::new();
    let mut keys = 0;
    for line in example.lines() {
        let Some(setting) = line.strip_prefix('#') else {
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        // "#key = value" lines only, not prose comments.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            continue;
        }
        keys += 1;
        match key {
            "auth" => conf.push_str("auth = passwd-file\n"),
            "passwd_file" => conf.push_str(&format!("passwd_file = {}\n", passwd.display())),
            // TLS needs certificate files, user/group need accounts: other tests cover them.
            "tls_listen" | "proxy_tls_listen" | "tls_cert" | "tls_key" | "tls_min_version"
            | "user" | "group" => {}
            _ => {
                conf.push_str(setting);
                conf.push('\n');
            }
        }
    }
    assert!(
        keys >= 28,
        "only {keys} settings found in etc/mboxpopd.conf"
    );
    let path = f.path().join("example.conf");
    std::fs::write(&path, &conf).unwrap();
    let (st, out, err) = run(Command::new(binary()).arg("-c").arg(&path).arg("-t"));
    assert!(st.success(), "{out}{err}\n--- config:\n{conf}");
}

#[test]
fn a_missing_passwd_file_is_a_clear_startup_error() {
    let mut f = fixture();
    let missing = f.path().join("no-such-passwd");
    f.config(&format!("passwd_file = {}", missing.display()));
    for mode in [&["-t"][..], &["-d", "-f"][..]] {
        let (st, out, err) = mboxpopd(&f, mode);
        assert!(!st.success(), "{mode:?} started without its passwd-file");
        assert!(
            format!("{out}{err}").contains("no-such-passwd"),
            "{mode:?}: unclear error: {out}{err}"
        );
    }
}
