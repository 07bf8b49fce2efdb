//! State-machine tests with an in-memory maildrop. The real mbox maildrop and the real binary
//! are exercised by the integration tests in `tests/`.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::protocol::error::StoreError;
use crate::protocol::ports::{CommitReport, MessageInfo};

/// Messages already in transmit form (CRLF, dot-stuffed), as the encoder would produce them.
struct MemoryMaildrop {
    bodies: Vec<Vec<u8>>,
    infos: Vec<MessageInfo>,
    committed: Rc<RefCell<Option<Vec<usize>>>>,
    fail_read: Option<fn() -> StoreError>,
}

impl Maildrop for MemoryMaildrop {
    fn count(&self) -> usize {
        self.infos.len()
    }

    fn size(&self, index: usize) -> u64 {
        self.infos.get(index).map_or(0, |m| m.size)
    }

    fn info(&self, index: usize) -> MessageInfo {
        self.infos.get(index).cloned().unwrap_or_default()
    }

    fn write_message(
        &mut self,
        index: usize,
        top: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<(), StoreError> {
        if let Some(f) = self.fail_read {
            return Err(f());
        }
        let body = &self.bodies[index];
        let bytes: Vec<u8> = match top {
            None => body.clone(),
            Some(k) => {
                let split = body
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4)
                    .unwrap_or(body.len());
                let mut v = body[..split].to_vec();
                for line in body[split..]
                    .split_inclusive(|&b| b == b'\n')
                    .take(k as usize)
                {
                    v.extend_from_slice(line);
                }
                v
            }
        };
        out.write_all(&bytes).map_err(StoreError::Client)
    }

    fn commit(&mut self, deleted: &[usize]) -> Result<CommitReport, StoreError> {
        *self.committed.borrow_mut() = Some(deleted.to_vec());
        Ok(CommitReport {
            deleted_messages: deleted.len(),
            deleted_octets: deleted.iter().map(|&i| self.infos[i].size).sum(),
            rewritten_bytes: 0,
        })
    }
}

struct FakeServices {
    committed: Rc<RefCell<Option<Vec<usize>>>>,
    open_error: Option<fn() -> StoreError>,
    fail_read: Option<fn() -> StoreError>,
}

fn account(name: &str) -> Account {
    Account {
        name: name.into(),
        uid: None,
        gid: None,
        home: None,
        mailbox: None,
    }
}

impl Services for FakeServices {
    fn authenticate(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        match (user, password) {
            ("alice", b"wonderland") | ("bob", b"secret pw") => Ok(account(user)),
            ("broken", _) => Err(AuthError::Temporary("backend down".into())),
            _ => Err(AuthError::Invalid),
        }
    }

    fn plaintext_secret(&self, user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError> {
        Ok((user == "alice").then(|| (account("alice"), b"wonderland".to_vec())))
    }

    fn has_plaintext_secrets(&self) -> bool {
        true
    }

    fn open_maildrop(&self, _account: &Account) -> Result<Box<dyn Maildrop>, StoreError> {
        if let Some(f) = self.open_error {
            return Err(f());
        }
        let bodies = vec![
            b"Subject: one\r\n\r\nhello\r\n".to_vec(),
            b"Subject: two\r\n\r\nline 1\r\n..dot\r\nline 3\r\n".to_vec(),
            b"Subject: three\r\n\r\nbye\r\n".to_vec(),
        ];
        let infos = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| MessageInfo {
                size: unstuffed_len(b),
                uidl: format!("uid-{i}"),
            })
            .collect();
        Ok(Box::new(MemoryMaildrop {
            bodies,
            infos,
            committed: self.committed.clone(),
            fail_read: self.fail_read,
        }))
    }
}

/// RFC 1939 sizes count CRLF line ends but not the dots added by byte-stuffing.
fn unstuffed_len(transmit: &[u8]) -> u64 {
    let stuffed = transmit
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.starts_with(b".."))
        .count();
    (transmit.len() - stuffed) as u64
}

fn params() -> SessionParams {
    SessionParams {
        hostname: "test.example".into(),
        implementation: "mboxpopd test".into(),
        apop_timestamp: None,
        tls_active: false,
        stls_available: false,
        plaintext_auth: PlaintextAuth::Always,
        peer_is_loopback: false,
        peer: "192.0.2.1".into(),
        xclient: false,
        login_delay: None,
        max_auth_failures: 3,
        auth_failure_delay: Duration::ZERO,
    }
}

struct Harness {
    services: FakeServices,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            services: FakeServices {
                committed: Rc::new(RefCell::new(None)),
                open_error: None,
                fail_read: None,
            },
        }
    }
}

/// Run a script of lines, returning the full output and the last step.
fn run(session: &mut Session<'_>, lines: &[&str]) -> (String, Step) {
    let mut out = Vec::new();
    let mut step = Step::cont();
    for line in lines {
        step = session.handle_line(line.as_bytes(), &mut out);
    }
    (String::from_utf8(out).unwrap(), step)
}

fn login<'a>(h: &'a Harness) -> Session<'a> {
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
    s
}

#[test]
fn greeting_without_and_with_apop() {
    let h = Harness::new();
    let mut out = Vec::new();
    Session::new(&h.services, params())
        .greeting(&mut out)
        .unwrap();
    assert_eq!(out, b"+OK POP3 server ready\r\n");
    let mut p = params();
    p.apop_timestamp = Some("<1.2@test.example>".into());
    let mut out = Vec::new();
    Session::new(&h.services, p).greeting(&mut out).unwrap();
    assert_eq!(out, b"+OK POP3 server ready <1.2@test.example>\r\n");
}

#[test]
fn user_pass_and_stat_list_uidl() {
    let h = Harness::new();
    let mut s = login(&h);
    let (out, _) = run(&mut s, &["STAT", "LIST", "LIST 2", "UIDL", "UIDL 3"]);
    assert_eq!(
        out,
        "+OK 3 84\r\n\
         +OK 3 messages (84 octets)\r\n1 23\r\n2 38\r\n3 23\r\n.\r\n\
         +OK 2 38\r\n\
         +OK Unique-ID listing follows\r\n1 uid-0\r\n2 uid-1\r\n3 uid-2\r\n.\r\n\
         +OK 3 uid-2\r\n"
    );
}

#[test]
fn message_numbers_are_checked() {
    let h = Harness::new();
    let mut s = login(&h);
    for cmd in [
        "LIST 0",
        "LIST 4",
        "LIST 4294967297",
        "RETR 99999999999999999999999",
        "UIDL 0",
        "TOP 4 1",
        "DELE 0",
    ] {
        let (out, step) = run(&mut s, &[cmd]);
        assert_eq!(out, "-ERR No such message\r\n", "{cmd}");
        assert_eq!(step.flow, Flow::Continue);
    }
    let (out, _) = run(&mut s, &["LIST x", "RETR"]);
    assert!(out.starts_with("-ERR Syntax error"), "{out}");
}

#[test]
fn retr_and_top() {
    let h = Harness::new();
    let mut s = login(&h);
    let (out, _) = run(&mut s, &["RETR 2", "TOP 2 0", "TOP 2 1"]);
    assert_eq!(
        out,
        "+OK 38 octets\r\nSubject: two\r\n\r\nline 1\r\n..dot\r\nline 3\r\n.\r\n\
         +OK Top of message follows\r\nSubject: two\r\n\r\n.\r\n\
         +OK Top of message follows\r\nSubject: two\r\n\r\nline 1\r\n.\r\n"
    );
    assert_eq!(s.summary().retrieved, (1, 38));
}

#[test]
fn dele_rset_and_quit_commit() {
    let h = Harness::new();
    let mut s = login(&h);
    let (out, _) = run(
        &mut s,
        &["DELE 1", "DELE 1", "RETR 1", "LIST 1", "STAT", "LIST"],
    );
    assert_eq!(
        out,
        "+OK Message 1 deleted\r\n-ERR Message 1 already deleted\r\n-ERR Message 1 already deleted\r\n\
         -ERR Message 1 already deleted\r\n+OK 2 61\r\n+OK 2 messages (61 octets)\r\n2 38\r\n3 23\r\n.\r\n"
    );
    let (out, _) = run(&mut s, &["RSET", "DELE 3", "DELE 1"]);
    assert_eq!(out, "+OK Maildrop has 3 messages (84 octets)\r\n+OK Message 3 deleted\r\n+OK Message 1 deleted\r\n");
    let (out, step) = run(&mut s, &["QUIT"]);
    assert_eq!(out, "+OK Logging out, 1 messages left\r\n");
    assert_eq!(step.flow, Flow::Close);
    assert_eq!(*h.services.committed.borrow(), Some(vec![0, 2]));
    assert_eq!(s.summary().deleted, (2, 46));
    assert_eq!(s.summary().end, "quit");
}

#[test]
fn no_quit_no_commit() {
    let h = Harness::new();
    let mut s = login(&h);
    run(&mut s, &["DELE 1"]);
    drop(s);
    assert_eq!(*h.services.committed.borrow(), None);
}

#[test]
fn quit_in_authorization_commits_nothing() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, step) = run(&mut s, &["QUIT"]);
    assert_eq!(out, "+OK Logging out\r\n");
    assert_eq!(step.flow, Flow::Close);
    assert_eq!(*h.services.committed.borrow(), None);
}

#[test]
fn wrong_state_commands() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    for cmd in [
        "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL",
    ] {
        let (out, step) = run(&mut s, &[cmd]);
        assert!(out.starts_with("-ERR Not logged in"), "{cmd}: {out}");
        assert_eq!(step.flow, Flow::Continue);
    }
    let mut s = login(&h);
    for cmd in ["USER alice", "PASS x", "APOP a b", "AUTH PLAIN", "STLS"] {
        let (out, _) = run(&mut s, &[cmd]);
        assert!(out.starts_with("-ERR Already logged in"), "{cmd}: {out}");
    }
    let (out, _) = run(&mut s, &["NOOP", "FOO", ""]);
    assert_eq!(out, "+OK\r\n-ERR Unknown command\r\n-ERR Empty command\r\n");
}

#[test]
fn pass_only_right_after_user() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["PASS wonderland"]);
    assert_eq!(out, "-ERR No user name given, send USER first\r\n");
    let (out, _) = run(&mut s, &["USER alice", "NOOP", "PASS wonderland"]);
    assert!(
        out.ends_with("-ERR No user name given, send USER first\r\n"),
        "{out}"
    );
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
}

#[test]
fn passwords_keep_spaces() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["USER bob", "PASS secret pw"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
}

#[test]
fn failures_are_uniform_delayed_and_limited() {
    let h = Harness::new();
    let mut p = params();
    p.auth_failure_delay = Duration::from_millis(1500);
    let mut s = Session::new(&h.services, p);
    let (unknown, step1) = run(&mut s, &["USER nobody", "PASS x"]);
    let (wrong, step2) = run(&mut s, &["USER alice", "PASS x"]);
    assert_eq!(
        unknown,
        "+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n"
    );
    assert_eq!(unknown, wrong);
    assert_eq!(step1.delay, Some(Duration::from_millis(1500)));
    assert_eq!(step2.flow, Flow::Continue);
    let (_, step3) = run(&mut s, &["USER alice", "PASS y"]);
    assert_eq!(step3.flow, Flow::Close);
    assert_eq!(s.summary().auth_failures, 3);
}

#[test]
fn backend_failure_is_sys_temp() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["USER broken", "PASS x"]);
    assert!(
        out.ends_with("-ERR [SYS/TEMP] Authentication is temporarily unavailable\r\n"),
        "{out}"
    );
}

#[test]
fn locked_maildrop_is_in_use() {
    let mut h = Harness::new();
    h.services.open_error = Some(|| StoreError::InUse("locked".into()));
    let mut s = Session::new(&h.services, params());
    let (out, step) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("-ERR [IN-USE] Mailbox is locked by another session\r\n"),
        "{out}"
    );
    assert_eq!(step.flow, Flow::Continue);
    assert!(!s.is_logged_in());
    h.services.open_error = Some(|| StoreError::Permanent("not an mbox".into()));
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("-ERR [SYS/PERM] Mailbox cannot be opened, contact your administrator\r\n"),
        "{out}"
    );
}

#[test]
fn foreign_rewrite_ends_the_session_without_commit() {
    let mut h = Harness::new();
    h.services.fail_read = Some(|| StoreError::Changed("inode changed".into()));
    let mut s = login(&h);
    let (out, step) = run(&mut s, &["DELE 2", "RETR 1"]);
    assert_eq!(out, "+OK Message 2 deleted\r\n-ERR [SYS/TEMP] Mailbox was changed by another program, reconnect\r\n");
    assert_eq!(step.flow, Flow::Close);
    drop(s);
    assert_eq!(*h.services.committed.borrow(), None);
}

#[test]
fn apop() {
    let h = Harness::new();
    let mut p = params();
    let ts = "<1896.697170952@dbc.mtview.ca.us>";
    p.apop_timestamp = Some(ts.into());
    let mut s = Session::new(&h.services, p.clone());
    // MD5("<1896.697170952@dbc.mtview.ca.us>wonderland")
    let digest = {
        use md5::{Digest, Md5};
        let d = Md5::digest(format!("{ts}wonderland").as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (out, _) = run(&mut s, &[&format!("APOP alice {digest}")]);
    assert!(out.starts_with("+OK Logged in"), "{out}");
    let mut s = Session::new(&h.services, p);
    let (out, _) = run(&mut s, &["APOP alice 00000000000000000000000000000000"]);
    assert_eq!(out, "-ERR [AUTH] Authentication failed\r\n");
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &[&format!("APOP alice {digest}")]);
    assert_eq!(out, "-ERR APOP is not enabled\r\n");
}

#[test]
fn capa_before_and_after_login() {
    let h = Harness::new();
    let mut p = params();
    p.stls_available = true;
    p.login_delay = Some(900);
    let mut s = Session::new(&h.services, p);
    let (before, _) = run(&mut s, &["CAPA"]);
    assert_eq!(
        before,
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN CRAM-MD5\r\nSTLS\r\n\
         RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nUTF8 USER\r\nLANG\r\n\
         LOGIN-DELAY 900\r\nIMPLEMENTATION mboxpopd test\r\n.\r\n"
    );
    run(&mut s, &["USER alice", "PASS wonderland"]);
    let (after, _) = run(&mut s, &["CAPA"]);
    assert_eq!(before, after);
}

#[test]
fn plaintext_policy() {
    let h = Harness::new();
    let mut p = params();
    p.plaintext_auth = PlaintextAuth::Tls;
    p.stls_available = true;
    let mut s = Session::new(&h.services, p.clone());
    let (capa, _) = run(&mut s, &["CAPA"]);
    assert!(
        !capa.contains("\r\nUSER\r\n") && capa.contains("SASL CRAM-MD5\r\n"),
        "{capa}"
    );
    let (out, _) = run(
        &mut s,
        &[
            "USER alice",
            "PASS wonderland",
            "AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=",
        ],
    );
    assert_eq!(
        out.matches("-ERR [AUTH] Plaintext authentication disallowed")
            .count(),
        3,
        "{out}"
    );
    // After STLS the same commands work.
    let (out, step) = run(&mut s, &["STLS"]);
    assert_eq!(out, "+OK Begin TLS negotiation\r\n");
    assert_eq!(step.flow, Flow::StartTls);
    s.tls_started();
    let (capa, _) = run(&mut s, &["CAPA", "STLS"]);
    assert!(
        capa.contains("\r\nUSER\r\n") && !capa.contains("STLS\r\n"),
        "{capa}"
    );
    assert!(capa.ends_with("-ERR Command not permitted when TLS active\r\n"));
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
    // Loopback peers may use plaintext under the `tls` policy.
    p.peer_is_loopback = true;
    let mut s = Session::new(&h.services, p.clone());
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
    p.plaintext_auth = PlaintextAuth::Never;
    p.tls_active = true;
    let mut s = Session::new(&h.services, p);
    let (out, _) = run(&mut s, &["USER alice"]);
    assert!(out.starts_with("-ERR [AUTH] Plaintext"), "{out}");
}

#[test]
fn stls_unavailable() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, step) = run(&mut s, &["STLS"]);
    assert_eq!(out, "-ERR TLS is not available\r\n");
    assert_eq!(step.flow, Flow::Continue);
}

#[test]
fn sasl_plain_login_cram() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["AUTH"]);
    assert_eq!(
        out,
        "+OK Supported mechanisms follow\r\nPLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n"
    );
    // PLAIN with an initial response ("\0alice\0wonderland").
    let (out, _) = run(&mut s, &["AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ="]);
    assert!(out.starts_with("+OK Logged in"), "{out}");

    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["AUTH PLAIN", "AGFsaWNlAHdvbmRlcmxhbmQ="]);
    assert!(out.starts_with("+ \r\n+OK Logged in"), "{out}");

    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["AUTH LOGIN", "YWxpY2U=", "d29uZGVybGFuZA=="]);
    assert!(
        out.starts_with("+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in"),
        "{out}"
    );

    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["AUTH LOGIN YWxpY2U=", "d29uZGVybGFuZA=="]);
    assert!(out.starts_with("+ UGFzc3dvcmQ6\r\n+OK Logged in"), "{out}");

    let mut s = Session::new(&h.services, params());
    let mut out = Vec::new();
    s.handle_line(b"AUTH CRAM-MD5", &mut out);
    let line = String::from_utf8(out).unwrap();
    let challenge = {
        use base64::Engine as _;
        let b64 = line.strip_prefix("+ ").unwrap().trim_end();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    assert!(
        challenge.starts_with('<') && challenge.ends_with("@test.example>"),
        "{challenge}"
    );
    let digest = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<md5::Md5>::new_from_slice(b"wonderland").unwrap();
        mac.update(challenge.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let answer = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("alice {digest}"))
    };
    let (out, _) = run(&mut s, &[&answer]);
    assert!(out.starts_with("+OK Logged in"), "{out}");
}

#[test]
fn sasl_errors() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["AUTH PLAIN", "*"]);
    assert_eq!(out, "+ \r\n-ERR Authentication cancelled\r\n");
    let (out, _) = run(&mut s, &["AUTH PLAIN", "!!!"]);
    assert_eq!(out, "+ \r\n-ERR Invalid base64 data\r\n");
    let (out, _) = run(&mut s, &["AUTH PLAIN !!!"]);
    assert_eq!(out, "-ERR Invalid base64 data in initial response\r\n");
    let (out, _) = run(&mut s, &["AUTH KERBEROS_V4"]);
    assert_eq!(out, "-ERR Unsupported authentication mechanism\r\n");
    let (out, _) = run(&mut s, &["AUTH PLAIN ="]);
    assert_eq!(out, "-ERR Malformed PLAIN response\r\n");
    let (out, _) = run(&mut s, &["AUTH PLAIN AGFsaWNlAHdyb25n"]);
    assert_eq!(out, "-ERR [AUTH] Authentication failed\r\n");
    // The session is still usable after all of this.
    let (out, _) = run(&mut s, &["USER alice", "PASS wonderland"]);
    assert!(
        out.ends_with("+OK Logged in, 3 messages (84 octets)\r\n"),
        "{out}"
    );
}

#[test]
fn long_initial_response_accepted() {
    let h = Harness::new();
    let s = Session::new(&h.services, params());
    assert!(s.max_line_len() > 255 * 4);
    let hs = login(&h);
    assert_eq!(hs.max_line_len(), command::MAX_COMMAND_LINE);
}

#[test]
fn line_too_long_resyncs() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let mut out = Vec::new();
    let step = s.line_too_long(&mut out);
    assert_eq!(out, b"-ERR Command line too long\r\n");
    assert_eq!(step.flow, Flow::Continue);
    let long = format!("NOOP {}", "x".repeat(2000));
    let (out, _) = run(&mut s, &[&long, "QUIT"]);
    assert_eq!(out, "-ERR Command line too long\r\n+OK Logging out\r\n");
}

#[test]
fn utf8_and_lang() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let (out, _) = run(&mut s, &["UTF8", "LANG", "LANG en", "LANG *", "LANG fr"]);
    assert_eq!(
        out,
        "+OK UTF8 enabled\r\n+OK Language listing follows\r\nen English\r\ni-default Default language\r\n.\r\n\
         +OK en Language changed\r\n+OK en Language changed\r\n-ERR Invalid language\r\n"
    );
    let mut s = login(&h);
    let (out, _) = run(&mut s, &["UTF8"]);
    assert_eq!(out, "+OK UTF8 enabled\r\n");
}

#[test]
fn xclient_from_a_trusted_proxy_names_the_client() {
    let h = Harness::new();
    let mut p = params();
    p.xclient = true;
    p.peer = "127.0.0.1".into();
    p.peer_is_loopback = true;
    p.plaintext_auth = PlaintextAuth::Tls;
    let mut s = Session::new(&h.services, p);
    let mut greeting = Vec::new();
    s.greeting(&mut greeting).unwrap();
    // Dovecot's proxy checks for exactly this prefix.
    assert!(greeting.starts_with(b"+OK [XCLIENT] "), "{greeting:?}");
    let (capa, _) = run(&mut s, &["CAPA"]);
    assert!(capa.contains("\r\nXCLIENT\r\n"), "{capa}");
    // Dovecot pipelines XCLIENT and USER.
    let (out, _) = run(
        &mut s,
        &[
            "XCLIENT ADDR=2001:db8::7 PORT=51234 SESSION=abcDEF12 TTL=4",
            "USER alice",
        ],
    );
    // The named client is remote: plaintext is refused to it under `tls`.
    assert_eq!(
        out,
        "+OK\r\n-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n"
    );
    assert_eq!(s.peer(), "2001:db8::7");
    // Once the client is named, it cannot rename itself.
    let (out, _) = run(&mut s, &["XCLIENT ADDR=192.0.2.9", "CAPA"]);
    assert!(out.starts_with("-ERR Unknown command\r\n"), "{out}");
    assert!(!out.contains("XCLIENT"), "{out}");
}

#[test]
fn xclient_is_refused_to_others_and_after_login() {
    let h = Harness::new();
    let mut s = Session::new(&h.services, params());
    let mut greeting = Vec::new();
    s.greeting(&mut greeting).unwrap();
    assert_eq!(greeting, b"+OK POP3 server ready\r\n");
    let (out, _) = run(&mut s, &["XCLIENT ADDR=10.0.0.1 PORT=1", "CAPA"]);
    assert!(out.starts_with("-ERR Unknown command\r\n"), "{out}");
    assert!(!out.contains("XCLIENT"), "{out}");
    assert_eq!(s.peer(), "192.0.2.1");
    let mut p = params();
    p.xclient = true;
    let mut s = Session::new(&h.services, p);
    let (out, _) = run(&mut s, &["XCLIENT PORT=1", "XCLIENT ADDR=not-an-ip"]);
    assert_eq!(out.matches("-ERR Syntax error").count(), 2, "{out}");
    run(&mut s, &["USER alice", "PASS wonderland"]);
    let (out, _) = run(&mut s, &["XCLIENT ADDR=10.0.0.1"]);
    assert!(out.starts_with("-ERR Already logged in"), "{out}");
}
