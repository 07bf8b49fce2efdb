//! RFC 1939 / 2449 / 3206 conformance of every command and every `-ERR` path, checked byte
//! by byte against the real binary in inetd mode (one session over pipes).

use crate::common;

use common::*;

fn three() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    f
}

fn logged_in(f: &Fixture) -> Conn {
    let mut c = f.inetd();
    c.login("alice", "secret");
    c
}

fn size(m: &str) -> usize {
    content(m).len()
}

#[test]
fn greeting_is_a_single_ok_line_without_timestamp_by_default() {
    let f = three();
    let mut c = f.inetd();
    // APOP is off by default: a timestamp would make curl and others switch to APOP.
    assert!(
        !c.greeting.contains('<'),
        "greeting advertises APOP: {}",
        c.greeting
    );
    c.quit();
}

#[test]
fn stat_list_and_sizes() {
    let f = three();
    let mut c = logged_in(&f);
    let total = size(MSG1) + size(MSG2) + size(MSG3);
    assert_eq!(c.ok("STAT"), format!("+OK 3 {total}"));
    let listing = c.ok_multi("LIST");
    assert_eq!(
        String::from_utf8(listing).unwrap(),
        format!(
            "1 {}\r\n2 {}\r\n3 {}\r\n",
            size(MSG1),
            size(MSG2),
            size(MSG3)
        )
    );
    assert_eq!(c.ok("LIST 2"), format!("+OK 2 {}", size(MSG2)));
    c.quit();
}

#[test]
fn retr_sends_crlf_dot_stuffed_content_and_sizes_match() {
    let f = three();
    let mut c = logged_in(&f);
    for (i, m) in [MSG1, MSG2, MSG3].iter().enumerate() {
        let n = i + 1;
        let payload = c.ok_multi(&format!("RETR {n}"));
        assert_eq!(
            String::from_utf8_lossy(&payload),
            String::from_utf8_lossy(&wire(m)),
            "RETR {n}"
        );
        let listed: usize = c.ok(&format!("LIST {n}"))[4..]
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(listed, unstuff(&payload).len(), "LIST size vs RETR octets");
    }
    c.quit();
}

#[test]
fn top_sends_headers_blank_line_and_n_body_lines() {
    let f = three();
    let mut c = logged_in(&f);
    assert_eq!(show(&c.ok_multi("TOP 1 0")), show(&top(MSG1, 0)));
    assert_eq!(show(&c.ok_multi("TOP 2 2")), show(&top(MSG2, 2)));
    assert_eq!(show(&c.ok_multi("TOP 3 1000")), show(&wire(MSG3)));
    c.err("TOP 1");
    c.err("TOP 1 -1");
    c.err("TOP 1 x");
    c.err("TOP 4 0");
    c.err("TOP 0 0");
    c.quit();
}

#[test]
fn uidl_listing_and_single() {
    let f = three();
    let mut c = logged_in(&f);
    let lines = c.ok_multi("UIDL");
    let lines = String::from_utf8(lines).unwrap();
    let uids: Vec<(String, String)> = lines
        .split_terminator("\r\n")
        .map(|l| {
            let (n, u) = l.split_once(' ').expect("n uid");
            (n.to_string(), u.to_string())
        })
        .collect();
    assert_eq!(
        uids.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    for (n, u) in &uids {
        assert!(
            (1..=70).contains(&u.len()) && u.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "bad UIDL {u:?}"
        );
        assert_eq!(c.ok(&format!("UIDL {n}")), format!("+OK {n} {u}"));
    }
    let mut distinct: Vec<&String> = uids.iter().map(|(_, u)| u).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "UIDLs not unique: {uids:?}");
    c.err("UIDL 4");
    c.err("UIDL 0");
    c.quit();
}

#[test]
fn dele_rset_and_deleted_messages() {
    let f = three();
    let mut c = logged_in(&f);
    c.ok("DELE 2");
    c.err("DELE 2");
    c.err("RETR 2");
    c.err("LIST 2");
    c.err("TOP 2 0");
    c.err("UIDL 2");
    assert_eq!(c.ok("STAT"), format!("+OK 2 {}", size(MSG1) + size(MSG3)));
    assert_eq!(
        String::from_utf8(c.ok_multi("LIST")).unwrap(),
        format!("1 {}\r\n3 {}\r\n", size(MSG1), size(MSG3))
    );
    let uidl = String::from_utf8(c.ok_multi("UIDL")).unwrap();
    assert!(uidl.starts_with("1 ") && uidl.contains("\r\n3 ") && !uidl.contains("\r\n2 "));
    c.ok("RSET");
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG2)));
    // RSET only undid the marks: QUIT now deletes nothing.
    c.quit();
    assert_eq!(
        show(&f.read_mbox("alice")),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
}

#[test]
fn bare_lf_is_accepted_as_line_end() {
    let f = three();
    let mut c = f.inetd();
    c.send(b"USER alice\nPASS secret\nSTAT\n");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK 3 "));
    c.quit();
}

#[test]
fn message_number_errors() {
    let f = three();
    let mut c = logged_in(&f);
    for bad in [
        "RETR 0",
        "RETR 4",
        "RETR",
        "RETR x",
        "RETR -1",
        "RETR 1x",
        "RETR 1 2",
        "LIST 0",
        "LIST 4",
        "LIST -1",
        "LIST abc",
        // 2^32 + 1: must not wrap around to message 1.
        "LIST 4294967297",
        "LIST 18446744073709551617",
        "RETR 4294967297",
        "DELE 4294967297",
        "UIDL 4294967297",
        "TOP 4294967297 0",
        "DELE 0",
        "DELE 4",
        "DELE",
    ] {
        c.err(bad);
    }
    // After all that the session is intact and nothing was marked.
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.quit();
    assert_eq!(
        show(&f.read_mbox("alice")),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
}

#[test]
fn unknown_and_malformed_commands_get_err_and_the_session_goes_on() {
    let f = three();
    let mut c = f.inetd();
    for bad in [
        "FOO",
        "XTND XMIT",
        "",
        "   ",
        "STAT",
        "LIST",
        "RETR 1",
        "DELE 1",
        "RSET",
        "NOOP",
        "UIDL",
        "TOP 1 0",
    ] {
        // In AUTHORIZATION, transaction commands are wrong-state errors.
        c.err(bad);
    }
    c.login("alice", "secret");
    for bad in [
        "FOO",
        "USER alice",
        "PASS secret",
        "APOP alice 0123456789abcdef0123456789abcdef",
        "STAT 1",
        "NOOP 1",
        "RSET 1",
        "LIST 1 2",
        "UIDL 1 2",
    ] {
        c.err(bad);
    }
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.quit();
}

#[test]
fn quit_in_authorization_says_ok_and_changes_nothing() {
    let f = three();
    let mut c = f.inetd();
    c.ok("USER alice");
    c.quit();
    assert_eq!(
        show(&f.read_mbox("alice")),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let f = three();
    let mut c = f.inetd();
    c.ok("USER alice");
    let wrong = c.err("PASS nope");
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
    c.cmd("USER nobody-here");
    let unknown = c.err("PASS nope");
    assert_eq!(wrong, unknown, "unknown users must be indistinguishable");
    // The third failure ends the connection.
    c.cmd("USER alice");
    let third = c.cmd("PASS still-wrong");
    assert!(third.starts_with("-ERR"), "{third}");
    c.expect_eof();
}

#[test]
fn failed_login_is_delayed() {
    let mut f = three();
    f.config("auth_failure_delay = 1s");
    let mut c = f.inetd();
    c.ok("USER alice");
    let t = std::time::Instant::now();
    c.err("PASS nope");
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(900),
        "no failure delay: {:?}",
        t.elapsed()
    );
    c.login("alice", "secret");
    c.quit();
}

#[test]
fn path_traversal_user_names_are_refused() {
    let f = three();
    // Names that, pasted into "spool/%u", would reach alice's mailbox from elsewhere, or
    // smuggle a control character into logs. One connection each: failures add up.
    for name in ["../spool/alice", "alice/../alice", "./alice", "alice\u{1}"] {
        let mut c = f.inetd();
        c.cmd(&format!("USER {name}"));
        let r = c.cmd("PASS secret");
        assert!(r.starts_with("-ERR"), "USER {name:?} logged in: {r}");
    }
}

#[test]
fn capa_lists_the_required_capabilities_before_and_after_login() {
    let f = three();
    let mut c = f.inetd();
    c.ok("CAPA");
    let before = c.multi_lines();
    for cap in [
        "TOP",
        "USER",
        "UIDL",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "EXPIRE NEVER",
    ] {
        assert!(
            before.iter().any(|l| l == cap),
            "CAPA lacks {cap}: {before:?}"
        );
    }
    assert!(
        before.iter().any(|l| l.starts_with("IMPLEMENTATION ")),
        "{before:?}"
    );
    assert!(!before.iter().any(|l| l.starts_with("LOGIN-DELAY")));
    c.login("alice", "secret");
    c.ok("CAPA");
    let after = c.multi_lines();
    for cap in before
        .iter()
        .filter(|c| !c.starts_with("SASL") && *c != "STLS" && *c != "USER")
    {
        assert!(
            after.contains(cap),
            "{cap} offered before login but not after: {after:?}"
        );
    }
    c.quit();
}

#[test]
fn capa_advertises_login_delay_when_configured() {
    let mut f = three();
    f.config("login_delay = 900");
    let mut c = f.inetd();
    c.ok("CAPA");
    let caps = c.multi_lines();
    assert!(caps.iter().any(|l| l == "LOGIN-DELAY 900"), "{caps:?}");
    c.quit();
}

#[test]
fn apop_is_refused_when_off() {
    let f = three();
    let mut c = f.inetd();
    let digest = md5_hex(b"<1.2@test.example>secret");
    c.err(&format!("APOP alice {digest}"));
    c.quit();
}

#[test]
fn apop_with_plain_secret() {
    let mut f = three();
    f.config("apop = yes");
    let mut c = f.inetd();
    let g = c.greeting.clone();
    let ts = &g[g.find('<').expect("APOP timestamp in greeting")..=g.rfind('>').unwrap()];
    assert!(ts.contains('@'), "timestamp {ts}");
    // A new timestamp for every connection.
    let c2 = f.inetd();
    assert_ne!(c.greeting, c2.greeting);
    drop(c2);
    let bad = md5_hex(format!("{ts}wrong").as_bytes());
    assert!(c
        .err(&format!("APOP alice {bad}"))
        .starts_with("-ERR [AUTH]"));
    let good = md5_hex(format!("{ts}secret").as_bytes());
    c.ok(&format!("APOP alice {good}"));
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.quit();
}

fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn lines_of_255_octets_are_accepted_and_long_lines_resync() {
    let f = three();
    let mut c = logged_in(&f);
    // 255 octets including CRLF (RFC 2449): a LIST with leading zeros.
    let arg = format!("{}1", "0".repeat(255 - 2 - 5 - 1));
    let line = format!("LIST {arg}");
    assert_eq!(line.len() + 2, 255);
    assert_eq!(c.ok(&line), format!("+OK 1 {}", size(MSG1)));
    // Far over the cap: one -ERR, then the next line is a fresh command.
    let huge = format!("NOOP {}\r\n", "x".repeat(64 * 1024));
    c.send(huge.as_bytes());
    assert!(c.line().starts_with("-ERR"));
    c.ok("NOOP");
    assert!(c.ok("STAT").starts_with("+OK 3 "));
    c.quit();
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let f = three();
    let script = [
        "CAPA",
        "USER alice",
        "PASS secret",
        "STAT",
        "LIST",
        "UIDL",
        "RETR 1",
        "TOP 2 1",
        "DELE 3",
        "LIST 3",
        "NOOP",
        "RETR 2",
        "RSET",
        "LIST 3",
        "UIDL 2",
        "BOGUS",
        "STAT",
    ];
    // One command at a time...
    let mut one = f.inetd();
    let mut expected = Vec::new();
    for cmd in script {
        one.send(format!("{cmd}\r\n").as_bytes());
        let status = one.raw_line().expect("response");
        expected.extend_from_slice(&status);
        let multi = status.starts_with(b"+OK")
            && matches!(
                cmd,
                "CAPA" | "LIST" | "UIDL" | "RETR 1" | "TOP 2 1" | "RETR 2"
            );
        if multi {
            expected.extend_from_slice(&one.multi());
            expected.extend_from_slice(b".\r\n");
        }
    }
    one.send(b"QUIT\r\n");
    while let Some(l) = one.raw_line() {
        expected.extend_from_slice(&l);
    }
    // ...and all in one write, QUIT included, must give the very same bytes.
    let mut all = f.inetd();
    let batch: String = script.iter().map(|c| format!("{c}\r\n")).collect();
    all.send(format!("{batch}QUIT\r\n").as_bytes());
    let mut got = Vec::new();
    while let Some(l) = all.raw_line() {
        got.extend_from_slice(&l);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected),
        "pipelined transcript differs from the one-at-a-time one"
    );
    assert!(got.ends_with(b"\r\n"));
}

#[test]
fn inactivity_timeout_ends_the_session_without_update() {
    let mut f = three();
    f.config("timeout = 2s");
    let mut c = logged_in(&f);
    c.ok("DELE 1");
    let t = std::time::Instant::now();
    // The server may send a last -ERR line before hanging up.
    while let Some(l) = c.raw_line() {
        assert!(l.starts_with(b"-ERR"), "{l:?}");
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
    c.wait();
    assert_eq!(
        show(&f.read_mbox("alice")),
        show(&mbox(&[MSG1, MSG2, MSG3]))
    );
    assert_eq!(f.spool_leftovers(), Vec::<String>::new());
}

#[test]
fn inetd_mode_writes_nothing_but_protocol() {
    let f = three();
    // Without -f logs go to syslog; under inetd, stdout and stderr are the socket.
    let mut c = f.inetd_with(&[]);
    c.login("alice", "secret");
    c.ok_multi("RETR 1");
    c.ok("DELE 1");
    c.err("FOO");
    c.quit();
    assert_eq!(c.log(), "", "mboxpopd -i wrote to stderr");
    let expected_start = b"+OK";
    assert_eq!(&c.transcript[..3], expected_start);
}

#[test]
fn inetd_mode_on_a_real_socket() {
    // As inetd and systemd (Accept=yes) run it: the connection itself is stdin and stdout.
    let f = three();
    let mut c = f.inetd_socket();
    c.login("alice", "secret");
    assert_eq!(show(&c.ok_multi("RETR 2")), show(&wire(MSG2)));
    c.ok("DELE 2");
    c.quit();
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG1, MSG3])));
    // The peer is the socket's, not "local" as for pipes.
    assert!(c.log().contains("peer=127.0.0.1"), "{}", c.log());
}
