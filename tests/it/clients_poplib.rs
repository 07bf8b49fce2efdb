//! Python's poplib, a real client, against the standalone daemon.

use crate::common;

use std::process::Command;

use common::*;

/// Drives one session with poplib and prints one result per line:
/// `stat N SIZE`, `list N SIZE`, `uidl N UID`, `retr N OCTETS HEX`, `top N HEX`,
/// `err TEXT`, `quit TEXT`.
const SCRIPT: &str = r#"
import poplib, sys
host, port, user, pw, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
p = poplib.POP3(host, port, timeout=20)
if mode == "apop":
    p.apop(user, pw)
else:
    caps = p.capa()
    print("capa", " ".join(sorted(caps)))
    p.user(user)
    p.pass_(pw)
count, size = p.stat()
print("stat", count, size)
for l in p.list()[1]:
    print("list", l.decode())
for l in p.uidl()[1]:
    print("uidl", l.decode())
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    print("retr", i, octets, b"".join(l + b"\r\n" for l in lines).hex())
resp, lines, octets = p.top(1, 0)
print("top", 1, b"".join(l + b"\r\n" for l in lines).hex())
try:
    p.retr(count + 1)
    print("err none")
except poplib.error_proto as e:
    print("err", e.args[0].decode())
p.dele(2)
print("quit", p.quit().decode())
"#;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn poplib_session(server: &Server, user: &str, pass: &str, mode: &str) -> Vec<String> {
    let (st, out, err) = run(Command::new("python3").args([
        "-c",
        SCRIPT,
        server.host().trim_matches(|c| c == '[' || c == ']'),
        &server.port().to_string(),
        user,
        pass,
        mode,
    ]));
    assert!(
        st.success(),
        "poplib failed: {err}\n{out}\nlog:\n{}",
        server.log()
    );
    out.lines().map(str::to_string).collect()
}

fn check_fetch(f: &Fixture, lines: &[String]) {
    let msgs = [MSG1, MSG2, MSG3];
    let total: usize = msgs.iter().map(|m| content(m).len()).sum();
    let get = |key: &str| -> Vec<Vec<&str>> {
        lines
            .iter()
            .filter(|l| l.split(' ').next() == Some(key))
            .map(|l| l.split(' ').skip(1).collect())
            .collect()
    };
    assert!(
        lines.contains(&format!("stat 3 {total}")),
        "STAT via poplib: {lines:?}"
    );
    let list = get("list");
    let retr = get("retr");
    assert_eq!(list.len(), 3);
    assert_eq!(retr.len(), 3);
    for (i, m) in msgs.iter().enumerate() {
        let n = (i + 1).to_string();
        assert_eq!(list[i], vec![n.as_str(), &content(m).len().to_string()]);
        assert_eq!(retr[i][0], n);
        // poplib counts the octets it received, less stuffed dots: the RFC 1939 size.
        assert_eq!(retr[i][1], content(m).len().to_string(), "octets of {n}");
        assert_eq!(show(&unhex(retr[i][2])), show(&content(m)), "message {n}");
    }
    let uidl = get("uidl");
    assert_eq!(uidl.len(), 3);
    let top = get("top");
    assert_eq!(
        show(&unhex(top[0][1])),
        show(&unstuff(&common::top(MSG1, 0)))
    );
    let err = get("err");
    assert!(err[0][0] == "-ERR", "RETR of a missing message: {err:?}");
    assert!(get("quit")[0][0] == "+OK");
    assert_eq!(show(&f.read_mbox("alice")), show(&mbox(&[MSG1, MSG3])));
}

#[test]
fn poplib_user_pass_fetch_and_delete() {
    if require("python3").is_none() {
        return;
    }
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let lines = poplib_session(&server, "alice", "secret", "user");
    let capa = lines.iter().find(|l| l.starts_with("capa ")).expect("capa");
    for cap in ["TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES"] {
        assert!(capa.split(' ').any(|c| c == cap), "{capa}");
    }
    check_fetch(&f, &lines);
}

#[test]
fn poplib_apop() {
    if require("python3").is_none() {
        return;
    }
    let mut f = Fixture::new();
    f.config("apop = yes");
    f.write_mbox("alice", &mbox(&[MSG1, MSG2, MSG3]));
    let server = f.standalone();
    let lines = poplib_session(&server, "alice", "secret", "apop");
    check_fetch(&f, &lines);
}
